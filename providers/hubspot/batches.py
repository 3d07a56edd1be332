"""HubSpot's batch endpoints, the parts without I/O: how a batch of actions is split into
requests, and how a batch answer (200, or 207 Multi-Status with `results` and `errors`) is
read back to each action.

HubSpot refuses a batch/update that names the same object twice ("Duplicate IDs found in
batch input", 400 VALIDATION_ERROR), so such a batch is split: the later update goes in a
later request, and the updates land in the actions' order. A batch answer names the inputs
an error refuses in `context.ids` (or `context.id`); an object not found is
`OBJECT_NOT_FOUND`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from connector.errors import InvalidRequestError, NotFoundError

PROVIDER = "hubspot"


@dataclass(frozen=True)
class UpdateInput:
    """One action's update: its position in the batch, the object and the properties."""

    index: int
    object_type: str
    object_id: str
    properties: dict[str, str]


def update_requests(inputs: Sequence[UpdateInput]) -> list[tuple[str, list[UpdateInput]]]:
    """The batch/update requests for `inputs`: one per object type (types in the order they
    first appear), and a further one wherever an object is named a second time, so that no
    request names an object twice and a later update is sent after an earlier one."""
    requests: list[tuple[str, list[UpdateInput]]] = []
    for item in inputs:
        # The first request of this type after the last one that names this object.
        last_naming = max(
            (n for n, (kind, group) in enumerate(requests) if kind == item.object_type and _names(group, item)),
            default=-1,
        )
        target = next(
            (n for n, (kind, _) in enumerate(requests) if kind == item.object_type and n > last_naming),
            None,
        )
        if target is None:
            requests.append((item.object_type, [item]))
        else:
            requests[target][1].append(item)
    return requests


def _names(group: list[UpdateInput], item: UpdateInput) -> bool:
    return any(other.object_id == item.object_id for other in group)


def refusals_by_id(answer: Any) -> dict[str, InvalidRequestError]:
    """The errors of a batch answer by the input id each one names (`context.ids`, or
    `context.id`): NotFoundError for OBJECT_NOT_FOUND, InvalidRequestError otherwise."""
    refused: dict[str, InvalidRequestError] = {}
    for error in batch_errors(answer):
        context = error.get("context")
        named: list[Any] = []
        if isinstance(context, dict):
            for field in ("ids", "id"):
                value = context.get(field)
                named.extend(value if isinstance(value, list) else [value] if value is not None else [])
        for ident in named:
            refused.setdefault(str(ident), refusal(error))
    return refused


def batch_errors(answer: Any) -> list[dict[str, Any]]:
    """The `errors` of a batch answer (207), those that are objects."""
    errors = answer.get("errors") if isinstance(answer, dict) else None
    return [error for error in errors or [] if isinstance(error, dict)]


def batch_results(answer: Any) -> list[dict[str, Any]]:
    """The `results` of a batch answer, those that are objects."""
    results = answer.get("results") if isinstance(answer, dict) else None
    return [result for result in results or [] if isinstance(result, dict)]


def refusal(error: dict[str, Any]) -> InvalidRequestError:
    """One error of a batch answer as the error of the action it refuses."""
    category = str(error.get("category") or "") or None
    message = str(error.get("message") or category or "refused in a batch")
    kind = NotFoundError if category == "OBJECT_NOT_FOUND" else InvalidRequestError
    return kind(message, provider=PROVIDER, code=category)


def by_key(results: Sequence[dict[str, Any]], key_property: str, keys: Sequence[str]) -> dict[str, dict[str, Any]]:
    """The objects among `results` that carry one of `keys` in `key_property`, by that key.
    Only an object that really holds our key counts (an answer naming something else must not
    make us report an effect that was never made)."""
    wanted = set(keys)
    found: dict[str, dict[str, Any]] = {}
    for result in results:
        properties = result.get("properties")
        value = properties.get(key_property) if isinstance(properties, dict) else None
        if isinstance(value, str) and value in wanted and result.get("id") is not None:
            found.setdefault(value, result)
    return found


def refusal_of_key(errors: Sequence[dict[str, Any]], key: str) -> InvalidRequestError:
    """The error of a batch/create answer that refused the input carrying `key`: the one that
    names the key (in its message or context), else all the answer's messages together (a
    create has no id yet, so HubSpot may not say which input an error is about)."""
    for error in errors:
        if key in str(error.get("message") or "") or key in str(error.get("context") or ""):
            return refusal(error)
    messages = "; ".join(dict.fromkeys(str(e.get("message") or e.get("category") or "") for e in errors))
    return InvalidRequestError(
        f"HubSpot did not create the object with key {key}: {messages or 'no result for it'}", provider=PROVIDER
    )
