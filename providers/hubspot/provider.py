"""`HubSpotProvider`: companies, contacts, deals and CRM invoices in; properties, notes and
tasks out.

Reads go through the search API (see `providers.hubspot.search` for the 10,000-result
windows), on the first run from epoch 0: one code path, and because search sorts by the
last-modified date the cursor moves forward page by page (the list endpoint is ordered by id,
so its cursor could only be saved at the very end). Archived objects never appear in search:
they are read from the list endpoint with `archived=true` (see `_archived`).

Writes: PATCH of deal, invoice or company properties (naturally idempotent) and notes and
tasks associated with the company. HubSpot has no idempotency keys, so a note or task carries
our action key in a custom property that requires unique values (`hasUniqueValue`): HubSpot
itself refuses a second object with the same key when it is written, whatever its search
index has caught up with. A refused create is answered with the object that holds the key,
read by that property (`GET /crm/v3/objects/{type}/{key}?idProperty=...`, not a search).
The property is checked, and created if missing, through the properties API at first use
(`action_key_setup`; see `_key_property_ready`). A portal whose key property cannot have
unique values can fall back to the old search before create (`action_key_setup = "search"`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any, ClassVar
from urllib.parse import quote

from connector.errors import (
    AuthenticationError,
    ConnectorError,
    InvalidRequestError,
    NotFoundError,
    PaginationLoopError,
    ProviderError,
    ProviderUnavailableError,
)
from connector.http import (
    BearerAuth,
    OAuthTokenManager,
    ProviderHttp,
    RateLimiter,
    RetryPolicy,
    TokenStore,
    decode_json,
)
from connector.model import Action
from connector.providers.base import ActionResult, Page, Provider, ProviderSettings
from connector.providers.hubspot.batches import (
    UpdateInput,
    batch_errors,
    batch_results,
    by_key,
    refusal_of_key,
    refusals_by_id,
    update_requests,
)
from connector.providers.hubspot.search import SearchCursor, SearchWindows, epoch_ms
from connector.providers.hubspot.settings import WRITABLE, HubSpotSettings

PROVIDER = "hubspot"
REQUEST_ID_HEADERS = ("X-HubSpot-Correlation-Id", "X-Request-Id")

# Which last-modified property each object's search filters on (contacts are the odd one).
MODIFIED_PROPERTY = {
    "companies": "hs_lastmodifieddate",
    "contacts": "lastmodifieddate",
    "deals": "hs_lastmodifieddate",
    "invoices": "hs_lastmodifieddate",
}
# Objects whose company comes from the associations API (contacts carry associatedcompanyid).
WITH_COMPANY = ("deals", "invoices")
# Canonical Ref object types -> HubSpot object types an update may target.
TARGETS = {"deal": "deals", "invoice": "invoices", "customer": "companies"}
# Inputs in one batch request: HubSpot's limit for batch/update, batch/create and batch/read.
BATCH_INPUTS = 100
# batch/create attempts of one batch when HubSpot refuses it whole because a key exists.
CREATE_ROUNDS = 2

_DEFAULT: Any = object()


class HubSpotProvider(Provider):
    name: ClassVar[str] = PROVIDER
    kind = "crm"
    settings_model = HubSpotSettings
    mapping_file = "connector.mappings:hubspot.toml"
    streams = ("companies", "contacts", "deals", "invoices")
    actions = ("update_properties", "create_note", "create_task")
    batch_limits: ClassVar[dict[str, int]] = {
        "update_properties": BATCH_INPUTS,
        "create_note": BATCH_INPUTS,
        "create_task": BATCH_INPUTS,
    }

    settings: HubSpotSettings

    def __init__(
        self,
        settings: ProviderSettings,
        *,
        connection: str | None = None,
        token_store: TokenStore | None = None,
        retry: RetryPolicy | None = None,
        rate_limiter: RateLimiter | None = _DEFAULT,
        clock: Callable[[], float] = time.time,
        create_attempts: int = 3,
        lookup_settle_seconds: float = 2.0,
    ) -> None:
        super().__init__(settings, connection=connection, token_store=token_store)
        s = self.settings
        self._clock = clock
        # Used by the search fallback only (action_key_setup = "search").
        self._create_attempts = max(1, create_attempts)
        self._settle = lookup_settle_seconds
        # Object type -> None once its key property is known to require unique values, or
        # what is wrong with it (kept: every create of that type fails so until a restart).
        self._key_property: dict[str, str | None] = {}
        if rate_limiter is _DEFAULT:
            spec: dict[str, list[tuple[int, float]]] = {
                "default": [(s.default_rate, 10)],
                "search": [(s.search_requests_per_second, 1)],
            }
            if s.daily_request_limit:
                spec["default"].append((s.daily_request_limit, 86_400))
            rate_limiter = RateLimiter.from_spec(spec, provider=PROVIDER)
        self.http = ProviderHttp(
            PROVIDER,
            base_url=s.base_url,
            auth=self._auth(),
            rate_limiter=rate_limiter,
            retry=retry,
            request_id_headers=REQUEST_ID_HEADERS,
            timeout=s.timeout_seconds,
        )

    def _auth(self) -> BearerAuth | OAuthTokenManager:
        s = self.settings
        if not s.oauth:
            assert s.access_token is not None  # the settings validator saw to it
            return BearerAuth(s.access_token)
        assert s.client_id and s.client_secret and s.refresh_token
        # HubSpot wants the client credentials form-posted; access tokens live 30 minutes and
        # the manager refreshes `skew` seconds before `expires_in` runs out, not on a 401.
        return OAuthTokenManager(
            connection=self.connection,
            token_url=s.token_url,
            client_id=s.client_id,
            client_secret=s.client_secret,
            refresh_token=s.refresh_token,
            access_token=s.access_token,
            token_store=self.token_store,
            client_auth="post",
            provider=PROVIDER,
            skew=120.0,
            timeout=s.timeout_seconds,
        )

    def close(self) -> None:
        self.http.close()

    # Streams -------------------------------------------------------------------------------

    def read_companies(self, cursor: str | None) -> Iterator[Page]:
        return self._read("companies", cursor)

    def read_contacts(self, cursor: str | None) -> Iterator[Page]:
        return self._read("contacts", cursor)

    def read_deals(self, cursor: str | None) -> Iterator[Page]:
        return self._read("deals", cursor)

    def read_invoices(self, cursor: str | None) -> Iterator[Page]:
        return self._read("invoices", cursor)

    def _read(self, stream: str, cursor: str | None) -> Iterator[Page]:
        start = SearchCursor.parse(cursor)
        if cursor and start.tie_id is None:
            # The search index trails writes by a few seconds: look back a little.
            start.since = max(0, start.since - self.settings.search_lookback_seconds * 1000)
        windows = SearchWindows(
            search=lambda body: self._search(stream, body),
            modified_property=MODIFIED_PROPERTY[stream],
            properties=self.settings.properties_for(stream),
            page_size=self.settings.page_size,
        )
        last = cursor
        for records, position in windows.pages(start):
            if stream in WITH_COMPANY and self.settings.read_associations:
                self._attach_companies(stream, records)
            last = position.dump()
            notes, windows.notes[:] = list(windows.notes), []
            yield Page(stream, records, cursor=last, notes=notes)
        if self.settings.read_archived:
            since = start.since if cursor else None
            for records in self._archived(stream, since):
                yield Page(stream, records, cursor=last)

    def _search(self, stream: str, body: dict[str, Any]) -> dict[str, Any]:
        response = self.http.request(
            "POST",
            f"/crm/v3/objects/{stream}/search",
            json=body,
            bucket=("search", "default"),  # a search counts against both limits
            idempotent=True,  # read-only POST: safe to re-send after a 5xx or a timeout
        )
        answer: dict[str, Any] = decode_json(response, provider=PROVIDER)
        return answer

    def _archived(self, stream: str, since: int | None) -> Iterator[list[dict[str, Any]]]:
        """Archived (deleted) objects from the list endpoint, those archived since `since`
        (all on a full pull). HubSpot keeps them restorable for 90 days; older deletions are
        not visible anywhere."""
        params: dict[str, Any] = {
            "archived": "true",
            "limit": min(self.settings.page_size, 100),
            "properties": ",".join(self.settings.properties_for(stream)),
        }
        after: str | None = None
        followed: set[str] = set()
        while True:
            if after is not None:
                params["after"] = after
            answer = decode_json(
                self.http.request("GET", f"/crm/v3/objects/{stream}", params=params), provider=PROVIDER
            )
            results = [
                r
                for r in answer.get("results") or []
                if since is None or not r.get("archivedAt") or epoch_ms(str(r["archivedAt"])) >= since
            ]
            if results:
                yield results
            after = ((answer.get("paging") or {}).get("next") or {}).get("after")
            if not after:
                return
            if after in followed:
                raise PaginationLoopError(
                    f"GET /crm/v3/objects/{stream}: loop detected in pagination (after={after})",
                    provider=PROVIDER,
                )
            followed.add(after)

    def _attach_companies(self, stream: str, records: list[dict[str, Any]]) -> None:
        """Put each record's companies (primary first) where the list endpoint would:
        `associations.companies.results[].id`. One batch request per page (v4 API)."""
        if not records:
            return
        response = self.http.request(
            "POST",
            f"/crm/v4/associations/{stream}/companies/batch/read",
            json={"inputs": [{"id": str(r["id"])} for r in records]},
            idempotent=True,
        )
        answer = decode_json(response, provider=PROVIDER)
        by_id: dict[str, list[tuple[bool, str]]] = {}
        for result in answer.get("results") or []:
            source = str((result.get("from") or {}).get("id"))
            for to in result.get("to") or []:
                primary = any((t.get("label") or "").lower() == "primary" for t in to.get("associationTypes") or [])
                by_id.setdefault(source, []).append((not primary, str(to.get("toObjectId"))))
        singular = stream.rstrip("s")
        for record in records:
            companies = sorted(by_id.get(str(record["id"]), []))
            if companies:
                record.setdefault("associations", {})["companies"] = {
                    "results": [{"id": cid, "type": f"{singular}_to_company"} for _, cid in companies]
                }

    # Actions -------------------------------------------------------------------------------

    def apply_update_properties(self, action: Action) -> ActionResult:
        update = self._update_input(0, action)
        response = self.http.request(
            "PATCH",
            f"/crm/v3/objects/{update.object_type}/{update.object_id}",
            json={"properties": update.properties},
            idempotent=True,  # the same properties twice leave the same state
        )
        answer = decode_json(response, provider=PROVIDER)
        return ActionResult(remote_id=str(answer.get("id") or update.object_id), response=answer)

    def batch_update_properties(self, actions: list[Action], key: str) -> list[ActionResult | ConnectorError]:
        """`POST /crm/v3/objects/{type}/batch/update`, one request per object type (and one
        more wherever the batch names an object twice: HubSpot refuses a duplicate id in one
        request). Safe to resend: the same properties leave the same state, so `key` is not
        needed. 200: every input done; 207: the inputs its errors name (`context.ids`) are
        refused alone, the others done. An action that cannot be an update is refused alone
        and not sent."""
        results: list[ActionResult | ConnectorError | None] = [None] * len(actions)
        inputs: list[UpdateInput] = []
        for index, action in enumerate(actions):
            try:
                inputs.append(self._update_input(index, action))
            except InvalidRequestError as refused:
                results[index] = refused
        for object_type, group in update_requests(inputs):
            response = self.http.request(
                "POST",
                f"/crm/v3/objects/{object_type}/batch/update",
                json={"inputs": [{"id": item.object_id, "properties": item.properties} for item in group]},
                idempotent=True,
            )
            answer = decode_json(response, provider=PROVIDER)
            updated = {str(result.get("id")): result for result in batch_results(answer)}
            refusals = refusals_by_id(answer)
            for item in group:
                if item.object_id in refusals:
                    results[item.index] = refusals[item.object_id]
                elif response.status_code == 207 and item.object_id not in updated:
                    results[item.index] = InvalidRequestError(
                        f"batch/update of {object_type} answered 207 without {item.object_id}: "
                        + ("; ".join(str(e.get("message")) for e in batch_errors(answer)) or "no result for it"),
                        provider=PROVIDER,
                        http_status=207,
                    )
                else:
                    results[item.index] = ActionResult(
                        remote_id=item.object_id, response=updated.get(item.object_id, {})
                    )
        return _complete(results)

    def _update_input(self, index: int, action: Action) -> UpdateInput:
        """What an update_properties action changes, the single and the batch path alike;
        InvalidRequestError when it cannot be an update."""
        target = action.target
        if target is None or target.object_type not in TARGETS:
            raise InvalidRequestError(
                f"update_properties needs a target of type {', '.join(TARGETS)}", provider=PROVIDER
            )
        given = action.payload.get("properties")
        if not isinstance(given, dict) or not given:
            raise InvalidRequestError("update_properties needs payload.properties", provider=PROVIDER)
        properties = {self._property_name(name): _text(value) for name, value in given.items()}
        return UpdateInput(index, TARGETS[target.object_type], str(target.remote_id), properties)

    def _property_name(self, name: str) -> str:
        """A canonical name (amount_outstanding, ...) -> the configured HubSpot property;
        anything else is taken as a HubSpot property name already."""
        setting = WRITABLE.get(name)
        return str(getattr(self.settings, setting)) if setting else name

    def apply_create_note(self, action: Action) -> ActionResult:
        return self._create_once(action, "notes")

    def apply_create_task(self, action: Action) -> ActionResult:
        return self._create_once(action, "tasks")

    def batch_create_note(self, actions: list[Action], key: str) -> list[ActionResult | ConnectorError]:
        """Notes in batches; see `_create_batch`."""
        return self._create_batch(actions, "notes")

    def batch_create_task(self, actions: list[Action], key: str) -> list[ActionResult | ConnectorError]:
        """Tasks in batches; see `_create_batch`."""
        return self._create_batch(actions, "tasks")

    def _create_body(self, action: Action, object_type: str) -> dict[str, Any]:
        """The create input of a note or task, associated with the company and carrying the
        action's key in the key property: the single and the batch path alike."""
        payload = action.payload
        if object_type == "notes":
            body = _required(payload, "body", "create_note")
            subject = payload.get("subject")
            properties = {
                "hs_timestamp": _timestamp(payload.get("timestamp") or self._now()),
                "hs_note_body": f"{subject}\n\n{body}" if subject else str(body),
            }
            association_type = self.settings.note_to_company_association_type
        else:
            subject = _required(payload, "subject", "create_task")
            due = payload.get("due")
            properties = {
                # A task's hs_timestamp is its due date.
                "hs_timestamp": _timestamp(due or self._now()),
                "hs_task_subject": str(subject),
                "hs_task_body": str(payload.get("body") or ""),
                "hs_task_status": "NOT_STARTED",
                "hs_task_priority": str(payload.get("priority") or self.settings.task_priority).upper(),
            }
            association_type = self.settings.task_to_company_association_type
        company_id = _required(payload, "company_id", f"create on {object_type}")
        return {
            "properties": {**properties, self.settings.action_key_property: action.idempotency_key},
            "associations": [
                {
                    "to": {"id": str(company_id)},
                    "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": association_type}],
                }
            ],
        }

    def _create_once(self, action: Action, object_type: str) -> ActionResult:
        create = self._create_body(action, object_type)
        key = action.idempotency_key
        if self.settings.action_key_setup == "search":
            return self._create_after_search(object_type, key, create)
        self._key_property_ready(object_type)
        return self._create_unique(object_type, key, create)

    def _create_batch(self, actions: list[Action], object_type: str) -> list[ActionResult | ConnectorError]:
        """Notes or tasks, each made once per action key. The keys are read first (one
        batch/read by the key property, and a second with archived=true for those not found
        live): those found are replays, not made again. The rest go in one batch/create;
        HubSpot's unique key property refuses a second object with the same key, so the
        request is safe to resend. Refused whole (400/409) because a key exists meanwhile (a
        lost earlier request made it), the keys are read again and the remainder created, at
        most `CREATE_ROUNDS` times; then each remaining action gets the refusal. A 207 maps its
        errors to the inputs they refuse. Two actions with one key share one object.

        With `action_key_setup = "search"` (no unique property) each action goes through the
        one-by-one search-then-create path instead: correct, not fast, and no safer than it."""
        results: list[ActionResult | ConnectorError | None] = [None] * len(actions)
        creates: dict[str, dict[str, Any]] = {}  # key -> create input, in the actions' order
        for index, action in enumerate(actions):
            try:
                creates.setdefault(action.idempotency_key, self._create_body(action, object_type))
            except InvalidRequestError as refused:
                results[index] = refused
        if self.settings.action_key_setup == "search":
            return self._create_one_by_one(actions, object_type, creates, results)
        self._key_property_ready(object_type)
        done: dict[str, ActionResult | ConnectorError] = {}
        pending = list(creates)
        for found_key, found in self._read_by_keys(object_type, pending).items():
            done[found_key] = ActionResult(remote_id=str(found["id"]), response=found, replayed=True)
        pending = [k for k in pending if k not in done]
        rounds = 0
        while pending:
            rounds += 1
            try:
                response = self.http.request(
                    "POST",
                    f"/crm/v3/objects/{object_type}/batch/create",
                    json={"inputs": [creates[k] for k in pending]},
                    idempotent=True,  # a resend is refused on the unique key, then read back
                )
            except InvalidRequestError as refused:
                if isinstance(refused, NotFoundError) or refused.http_status not in (400, 409):
                    raise
                found_now = self._read_by_keys(object_type, pending)
                if not found_now:
                    raise  # refused for another reason than a key that exists: the refusal says which
                for found_key, found in found_now.items():
                    done[found_key] = ActionResult(remote_id=str(found["id"]), response=found, replayed=True)
                pending = [k for k in pending if k not in done]
                if rounds >= CREATE_ROUNDS:
                    for k in pending:
                        done[k] = refused
                    pending = []
                continue
            answer = decode_json(response, provider=PROVIDER)
            prop = self.settings.action_key_property
            for made_key, made in by_key(batch_results(answer), prop, pending).items():
                done[made_key] = ActionResult(remote_id=str(made["id"]), response=made)
            missing = [k for k in pending if k not in done]
            if missing:
                # Refused one by one (207): an input refused because its key exists is a replay.
                for found_key, found in self._read_by_keys(object_type, missing).items():
                    done[found_key] = ActionResult(remote_id=str(found["id"]), response=found, replayed=True)
                errors = batch_errors(answer)
                for k in missing:
                    done.setdefault(k, refusal_of_key(errors, k))
            pending = []
        for index, action in enumerate(actions):
            if results[index] is None:
                results[index] = done[action.idempotency_key]
        return _complete(results)

    def _create_one_by_one(
        self,
        actions: list[Action],
        object_type: str,
        creates: dict[str, dict[str, Any]],
        results: list[ActionResult | ConnectorError | None],
    ) -> list[ActionResult | ConnectorError]:
        """The search fallback for a batch: each action through `_create_after_search`. A
        refusal of one action is its own; a failure that is not about the action (HubSpot
        unavailable, a limit, the credential) is given to the actions not sent yet too."""
        stop: ProviderError | None = None
        for index, action in enumerate(actions):
            if results[index] is not None:
                continue
            if stop is not None:
                results[index] = stop
                continue
            key = action.idempotency_key
            try:
                results[index] = self._create_after_search(object_type, key, creates[key])
            except InvalidRequestError as refused:
                results[index] = refused
            except ProviderError as failed:
                results[index] = stop = failed
        return _complete(results)

    def _read_by_keys(self, object_type: str, keys: list[str]) -> dict[str, dict[str, Any]]:
        """The objects whose key property holds one of `keys`, by key: one batch/read by that
        unique property, then one with archived=true for the keys not found live (someone
        deleted the note or task after we made it: it was made, so it is not made again)."""
        prop = self.settings.action_key_property
        found: dict[str, dict[str, Any]] = {}
        for archived in (False, True):
            missing = [k for k in keys if k not in found]
            if not missing:
                break
            try:
                response = self.http.request(
                    "POST",
                    f"/crm/v3/objects/{object_type}/batch/read",
                    params={"archived": "true"} if archived else None,
                    json={
                        "idProperty": prop,
                        "inputs": [{"id": k} for k in missing],
                        "properties": [prop],
                        "propertiesWithHistory": [],
                    },
                    idempotent=True,  # a read
                )
            except NotFoundError:
                continue  # none of them
            found.update(by_key(batch_results(decode_json(response, provider=PROVIDER)), prop, missing))
        return found

    def _create_unique(self, object_type: str, key: str, create: dict[str, Any]) -> ActionResult:
        """Create, carrying the key in a property with unique values. HubSpot checks that
        value when it writes the object, not when its search index catches up: a replay
        (after a lost answer, a crash before our commit, or the HTTP layer's own retry of a
        5xx or a timeout, which is safe here) is refused, and we answer with the object that
        holds the key, read by that property. HubSpot's documents do not say which status a
        duplicate unique value gets: contacts' duplicate email answers 409 CONFLICT ("...
        Existing ID: N"), integrators report 400 VALIDATION_ERROR for custom unique properties.
        Both are taken alike, and only the read (never the message) names the object."""
        try:
            response = self.http.request("POST", f"/crm/v3/objects/{object_type}", json=create, idempotent=True)
        except InvalidRequestError as refused:
            if isinstance(refused, NotFoundError) or refused.http_status not in (400, 409):
                raise
            found = self._read_by_key(object_type, key)
            if found is None:
                raise  # refused for another reason: the refusal says which
            return ActionResult(remote_id=str(found["id"]), response=found, replayed=True)
        answer = decode_json(response, provider=PROVIDER)
        return ActionResult(remote_id=str(answer["id"]), response=answer)

    def _read_by_key(self, object_type: str, key: str) -> dict[str, Any] | None:
        """The object whose key property holds `key`, read by that unique property (a read of
        the object store, not of the search index); an archived one too (someone deleted
        the note or task after we made it: it was made, so it is not made again)."""
        prop = self.settings.action_key_property
        for archived in (False, True):
            params = {"idProperty": prop, "properties": prop, **({"archived": "true"} if archived else {})}
            try:
                response = self.http.request(
                    "GET", f"/crm/v3/objects/{object_type}/{quote(key, safe='')}", params=params
                )
            except NotFoundError:
                continue
            except InvalidRequestError:
                return None  # 400: the property does not (or no longer) require unique values
            answer = decode_json(response, provider=PROVIDER)
            properties = answer.get("properties") if isinstance(answer, dict) else None
            # Trust only an object that really carries our key (a proxy answering something else
            # must not make us report an effect that was never made).
            if isinstance(properties, dict) and properties.get(prop) == key:
                return dict(answer)
        return None

    def _key_property_ready(self, object_type: str) -> None:
        """With action_key_setup = "ensure", once per object type: the key property must
        require unique values. It is read from the properties API and, when the portal does
        not have it yet, created so (in `action_key_property_group`, created too if need be).
        HubSpot cannot make an existing property unique, so an existing one without unique
        values is an error that says what to do, not something we work around silently."""
        if self.settings.action_key_setup != "ensure":
            return
        if object_type in self._key_property:
            known = self._key_property[object_type]
            if known is not None:
                raise InvalidRequestError(known, provider=PROVIDER)
            return
        prop = self.settings.action_key_property
        try:
            try:
                definition = self._properties_call("GET", f"/crm/v3/properties/{object_type}/{quote(prop, safe='')}")
            except NotFoundError:
                definition = self._create_key_property(object_type)
        except AuthenticationError as exc:
            if exc.http_status != 403:
                raise
            raise InvalidRequestError(
                f"HubSpot refused the properties API for {object_type} ({exc.message}): give the token the scopes "
                f"to read and create {object_type} properties, or create {prop} on {object_type} by hand with "
                '"Require unique values" and set action_key_setup = "assume"',
                provider=PROVIDER,
                http_status=exc.http_status,
                request_id=exc.request_id,
            ) from None
        problem = None
        if not definition.get("hasUniqueValue"):
            problem = (
                f"the {object_type} property {prop} does not require unique values, so HubSpot would take a second "
                f"{object_type[:-1]} for the same action: create a new single-line text property on {object_type} "
                f'with "Require unique values" (hasUniqueValue; an existing property cannot be made unique) and '
                'set action_key_property to its name, or set action_key_setup = "search" to look the key up by '
                "search before each create (HubSpot's search index lags, so a duplicate stays possible)"
            )
        self._key_property[object_type] = problem
        if problem is not None:
            raise InvalidRequestError(problem, provider=PROVIDER)

    def _create_key_property(self, object_type: str) -> dict[str, Any]:
        prop = self.settings.action_key_property
        group = self.settings.action_key_property_group
        try:
            self._properties_call(
                "POST",
                f"/crm/v3/properties/{object_type}/groups",
                {"name": group, "label": "AR sync", "displayOrder": -1},
            )
        except InvalidRequestError as exc:
            if exc.http_status != 409:  # 409: the group exists already
                raise
        try:
            return self._properties_call(
                "POST",
                f"/crm/v3/properties/{object_type}",
                {
                    "name": prop,
                    "label": "AR action key",
                    "type": "string",
                    "fieldType": "text",
                    "groupName": group,
                    "description": "Written by the AR connector: one note or task per planned action",
                    "hasUniqueValue": True,
                    "formField": False,
                },
            )
        except InvalidRequestError as exc:
            if exc.http_status != 409:
                raise
            # Created meanwhile (another worker, or our own earlier attempt): read what it is.
            return self._properties_call("GET", f"/crm/v3/properties/{object_type}/{quote(prop, safe='')}")

    def _properties_call(self, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        # Re-sending is safe: a second create of the same property or group is refused (409).
        response = self.http.request(method, path, json=body, idempotent=True)
        answer = decode_json(response, provider=PROVIDER)
        return answer if isinstance(answer, dict) else {}

    def _create_after_search(self, object_type: str, key: str, create: dict[str, Any]) -> ActionResult:
        """The fallback for a key property without unique values: look the key up by search,
        create only if it is not found. HubSpot's search index trails writes, so an object
        created moments ago (before a crash, or by an attempt whose answer was lost) can be
        missed and made twice; after a timeout or 5xx we wait `lookup_settle_seconds` for the
        index before looking again, which narrows that window without closing it."""
        for attempt in range(1, self._create_attempts + 1):
            found = self._find_by_key(object_type, key)
            if found is not None:
                return ActionResult(remote_id=str(found["id"]), response=found, replayed=True)
            try:
                # A create is not idempotent here: the HTTP layer does not re-send it after a
                # 5xx or a timeout. We look up again instead, and only then create again.
                response = self.http.request("POST", f"/crm/v3/objects/{object_type}", json=create)
            except ProviderUnavailableError:
                if attempt == self._create_attempts:
                    raise
                self.http.retry.sleep(self._settle)  # let the search index catch up
                continue
            answer = decode_json(response, provider=PROVIDER)
            return ActionResult(remote_id=str(answer["id"]), response=answer)
        raise AssertionError("unreachable")  # pragma: no cover

    def _find_by_key(self, object_type: str, key: str) -> dict[str, Any] | None:
        prop = self.settings.action_key_property
        answer = self._search(
            object_type,
            {
                "filterGroups": [{"filters": [{"propertyName": prop, "operator": "EQ", "value": key}]}],
                "sorts": ["hs_object_id"],  # the document's form: an array of strings
                "properties": [prop],
                "limit": 1,
                "after": "0",
            },
        )
        # Trust only a record that really carries our key: a search that matched loosely
        # (or a proxy answering something else) must not make us skip a create.
        for result in answer.get("results") or []:
            properties = result.get("properties") if isinstance(result, dict) else None
            if isinstance(properties, dict) and properties.get(prop) == key:
                return dict(result)
        return None

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self._clock(), UTC)


def _complete(results: list[ActionResult | ConnectorError | None]) -> list[ActionResult | ConnectorError]:
    """The batch's results once every action has one (a gap is a bug in the batch method)."""
    if any(result is None for result in results):
        raise AssertionError("an action of the batch was left without a result")
    return [result for result in results if result is not None]


def _required(payload: dict[str, Any], key: str, what: str) -> Any:
    value = payload.get(key)
    if value in (None, ""):
        raise InvalidRequestError(f"{what} needs payload.{key}", provider=PROVIDER)
    return value


def _timestamp(value: Any) -> str:
    """HubSpot datetime property value: ISO 8601 in UTC with milliseconds."""
    if isinstance(value, str):
        value = date.fromisoformat(value) if len(value) == 10 else datetime.fromisoformat(value.replace("Z", "+00:00"))
    if isinstance(value, datetime):
        moment = value if value.tzinfo else value.replace(tzinfo=UTC)
    elif isinstance(value, date):
        moment = datetime(value.year, value.month, value.day, tzinfo=UTC)
    else:
        raise InvalidRequestError(f"not a date or time: {value!r}", provider=PROVIDER)
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _text(value: Any) -> str:
    """HubSpot property values are strings; an empty string clears a property."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict) and "amount" in value:  # Money as JSON
        return str(value["amount"])
    amount = getattr(value, "amount", None)
    if isinstance(amount, Decimal):  # Money
        return str(amount)
    if isinstance(value, datetime):
        return _timestamp(value)
    if isinstance(value, date):
        return value.isoformat()
    return str(value)
