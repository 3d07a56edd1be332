"""What a partner tells the kit besides the provider class and its settings: recorded
answers, money and void cases, and one planned write per action.

Everything can come from `kit.toml` in the fixtures directory (see docs/plugins.md) or be
passed to `provider_test_class()` as Python values; both end up in one `KitConfig`.
"""

from __future__ import annotations

import json
import tomllib
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

MANIFEST = "kit.toml"


class KitSetupError(Exception):
    """The kit's own input (kit.toml, a fixture file, an argument) is wrong."""


@dataclass(frozen=True)
class Route:
    """One recorded answer: the request it answers and the response to give.

    `params` and `headers` match when the request carries at least these values; of several
    matching routes the most specific wins. Routes with the same match are served in turn
    (the first answer, then the second, ...), the last one again after that."""

    method: str
    path: str
    response: Any  # the body: parsed JSON, or None for no body
    status: int = 200
    params: dict[str, str] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    response_headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class MoneyCase:
    """A raw record whose money `field` must map to exactly `amount` in `currency`
    (a zero-decimal currency such as JPY and a three-decimal one such as KWD, at least)."""

    stream: str
    record: dict[str, Any]
    field: str  # dotted into the canonical record: "total", "lines.0.amount"
    amount: str
    currency: str


@dataclass(frozen=True)
class RecordCase:
    """A raw record that must map as voided (`status == "void"`) or deleted."""

    stream: str
    record: dict[str, Any]
    expect: Literal["void", "deleted"]


@dataclass(frozen=True)
class ActionCase:
    """One planned write to apply twice: its target (a Ref of the provider's own records)
    and payload, as the engine's planner would make them."""

    kind: str
    target: dict[str, Any] | None = None  # {"object_type": "invoice", "remote_id": "..."}
    payload: dict[str, Any] = field(default_factory=dict)


@dataclass
class KitConfig:
    routes: list[Route] = field(default_factory=list)
    money: list[MoneyCase] = field(default_factory=list)
    records: list[RecordCase] = field(default_factory=list)
    actions: dict[str, ActionCase] = field(default_factory=dict)
    # Writes that only read (searches): not counted as effects, replayed by the loop check.
    read_only: list[str] = field(default_factory=lambda: [r"/search$", r"/batch/read$", r"/query$"])
    # A read that makes more requests than this is taken to spin forever.
    max_requests: int = 300
    # A resumed read may re-read records changed this close to the cursor's moment.
    overlap_seconds: float = 1.0
    # Who answers the token endpoint: the kit itself ("kit") or the partner's API ("api").
    token_endpoint: Literal["kit", "api"] = "kit"


def _read_json(base: Path, name: str) -> Any:
    path = base / name
    if not path.is_file():
        raise KitSetupError(f"{path}: fixture file not found")
    try:
        return json.loads(path.read_text(encoding="utf-8"), parse_float=Decimal)
    except json.JSONDecodeError as exc:
        raise KitSetupError(f"{path}: not valid JSON: {exc}") from None


def _record(base: Path, entry: dict[str, Any], where: str) -> dict[str, Any]:
    if "record" not in entry:
        raise KitSetupError(f"{where}: needs `record` (a fixture file holding one raw object)")
    value = entry["record"]
    raw = _read_json(base, value) if isinstance(value, str) else value
    if not isinstance(raw, dict):
        raise KitSetupError(f"{where}: `record` must be one JSON object")
    return raw


def load_manifest(directory: str | Path) -> KitConfig:
    """The `kit.toml` of a fixtures directory (an empty config when there is none)."""
    base = Path(directory)
    if not base.is_dir():
        raise KitSetupError(f"fixtures directory {base} does not exist")
    manifest = base / MANIFEST
    if not manifest.is_file():
        return KitConfig()
    try:
        data = tomllib.loads(manifest.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise KitSetupError(f"{manifest}: not valid TOML: {exc}") from None
    config = KitConfig()
    for i, entry in enumerate(data.get("routes", [])):
        where = f"{manifest}: routes[{i}]"
        try:
            body = entry.get("response")
            config.routes.append(
                Route(
                    method=str(entry.get("method", "GET")).upper(),
                    path=str(entry["path"]),
                    response=_read_json(base, body) if isinstance(body, str) else body,
                    status=int(entry.get("status", 200)),
                    params={k: str(v) for k, v in entry.get("params", {}).items()},
                    headers={k: str(v) for k, v in entry.get("headers", {}).items()},
                    response_headers={k: str(v) for k, v in entry.get("response_headers", {}).items()},
                )
            )
        except KeyError as exc:
            raise KitSetupError(f"{where}: needs {exc}") from None
    for i, entry in enumerate(data.get("money", [])):
        where = f"{manifest}: money[{i}]"
        try:
            config.money.append(
                MoneyCase(
                    entry["stream"],
                    _record(base, entry, where),
                    entry["field"],
                    str(entry["amount"]),
                    entry["currency"],
                )
            )
        except KeyError as exc:
            raise KitSetupError(f"{where}: needs {exc}") from None
    for i, entry in enumerate(data.get("void", [])):
        where = f"{manifest}: void[{i}]"
        expect = entry.get("expect", "void")
        if expect not in ("void", "deleted"):
            raise KitSetupError(f"{where}: expect must be 'void' or 'deleted'")
        config.records.append(RecordCase(str(entry.get("stream", "")), _record(base, entry, where), expect))
    for kind, entry in data.get("actions", {}).items():
        config.actions[kind] = ActionCase(kind, entry.get("target"), dict(entry.get("payload", {})))
    kit = data.get("kit", {})
    if "read_only" in kit:
        config.read_only = [str(p) for p in kit["read_only"]]
    if "max_requests" in kit:
        config.max_requests = int(kit["max_requests"])
    if "overlap_seconds" in kit:
        config.overlap_seconds = float(kit["overlap_seconds"])
    if "token_endpoint" in kit:
        config.token_endpoint = kit["token_endpoint"]
    return config
