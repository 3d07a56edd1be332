"""HubSpot's face (CRM v3 objects, served under /hubspot): search with filter groups, sorts,
`after` paging and the 10,000-result ceiling; list, read, PATCH; create notes and tasks with
associations; v4 association reads; per-token limits (190 or 100 per 10 s, search 4/s).

Batch endpoints (`/crm/v3/objects/{type}/batch/{update|read}`, `.../{notes|tasks}/batch/
create`), at most 100 inputs each, one request against the limits: update applies each input
as PATCH does (200, or 207 listing the inputs refused, the others applied); create is all or
nothing as the single create checks it (201, or the single create's 400/409 for the batch);
read by id or `idProperty` (200, or 207 naming the ids not found). See `_batch_update`,
`_batch_create` and `_batch_read` for why those statuses.

Records are `{"id", "properties", "createdAt", "updatedAt", "archived"}` with string property
values, as HubSpot answers them. A write bumps `hs_lastmodifieddate` (`lastmodifieddate` on
contacts) and `updatedAt`, so incremental searches see it.

Search keeps, per object type and sort, the records in that order with their sort values,
until the type's data changes (`versions`). A filter group that bounds the sort property
(the adapter's windows: `hs_lastmodifieddate GTE t`, sorted by it) is then cut from that
order by bisection, so a new window over 99k deals costs no filter and sort of them all.

Custom properties (`/crm/v3/properties/{type}`, and their groups): read, list, create and
archive (DELETE).
A property created with `hasUniqueValue: true` is enforced at write time, as HubSpot does:
a create or PATCH that repeats another record's value is refused with 409 CONFLICT naming
the existing record ("... Existing ID: N"), and `GET /crm/v3/objects/{type}/{value}?
idProperty=NAME` reads the record holding a value (400 for a property without unique
values). The portal starts set up the way docs/providers/hubspot.md asks: `ar_action_key`
with unique values on notes and tasks (`PRESET_PROPERTIES`).

`search_delay_s`: a created record becomes visible to search only that many seconds after
its creation, like HubSpot's search index, which trails writes; reads by id or idProperty
and the list endpoint see it at once. (Updates show in search at once.)
"""

from __future__ import annotations

import fnmatch
import json
import re
from bisect import bisect_left, bisect_right
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any
from urllib.parse import unquote

from connector.sandbox.common import (
    Clock,
    RecordCheck,
    Refusal,
    Request,
    Response,
    Window,
    iso_ms,
    new_uuid,
    parse_iso,
    retry_after_header,
)
from connector.sandbox.oauth import OAuthIssuer, bearer_of

TYPES = ("companies", "contacts", "deals", "invoices", "notes", "tasks")
SEARCH_CAP = 10_000
MAX_SEARCH_LIMIT = 200
MAX_LIST_LIMIT = 100
# Inputs one batch request may carry (batch create, update and read), as on HubSpot.
MAX_BATCH_INPUTS = 100
# Properties HubSpot sets itself: an update naming one is refused (READ_ONLY_VALUE).
READ_ONLY_PROPERTIES = frozenset(
    {"hs_object_id", "createdate", "hs_createdate", "lastmodifieddate", "hs_lastmodifieddate"}
)
SEARCH_CACHE_SIZE = 256
# Range operators a bisection of the sorted values answers: (lower, upper) bounds as
# (the filter's field, inclusive).
# operator -> (low end, high end) of the range it sets: (the filter field holding the limit, inclusive)
RANGES: dict[str, tuple[tuple[str, bool] | None, tuple[str, bool] | None]] = {
    "GT": (("value", False), None),
    "GTE": (("value", True), None),
    "LT": (None, ("value", False)),
    "LTE": (None, ("value", True)),
    "EQ": (("value", True), ("value", True)),
    "BETWEEN": (("value", True), ("highValue", True)),
}
OPERATORS = {
    "BETWEEN",
    "CONTAINS_TOKEN",
    "EQ",
    "GT",
    "GTE",
    "HAS_PROPERTY",
    "IN",
    "LT",
    "LTE",
    "NEQ",
    "NOT_CONTAINS_TOKEN",
    "NOT_HAS_PROPERTY",
    "NOT_IN",
}
DEFAULT_PROPERTIES = {
    "companies": ["name", "domain", "createdate", "hs_lastmodifieddate", "hs_object_id"],
    "contacts": ["firstname", "lastname", "email", "createdate", "lastmodifieddate", "hs_object_id"],
    "deals": [
        "dealname",
        "amount",
        "closedate",
        "pipeline",
        "dealstage",
        "createdate",
        "hs_lastmodifieddate",
        "hs_object_id",
    ],
}
QUERY_PROPERTIES = (
    "name",
    "domain",
    "email",
    "firstname",
    "lastname",
    "dealname",
    "hs_number",
    "hs_note_body",
    "hs_task_subject",
)
# The portal's custom properties at start, per object type: the property the connector keeps
# its action key in (docs/providers/hubspot.md), in its own group. Tests remove it to see a
# fresh portal (the adapter then creates it).
PRESET_GROUP: dict[str, Any] = {"name": "ar_sync", "label": "AR sync", "displayOrder": -1}
PRESET_PROPERTIES: dict[str, list[dict[str, Any]]] = {
    object_type: [
        {
            "name": "ar_action_key",
            "label": "AR action key",
            "type": "string",
            "fieldType": "text",
            "groupName": "ar_sync",
            "description": "The AR connector's action key: one note or task per action",
            "hasUniqueValue": True,
        }
    ]
    for object_type in ("notes", "tasks")
}
PROPERTY_TYPES = {"string", "number", "date", "datetime", "enumeration", "bool", "phone_number"}
PROPERTY_NAME = re.compile(r"[a-z][a-z0-9_]{0,99}")
# Association type ids of the create bodies we accept (HUBSPOT_DEFINED), and the other way.
ASSOCIATION_TARGETS = {
    190: ("notes", "companies"),
    202: ("notes", "contacts"),
    214: ("notes", "deals"),
    192: ("tasks", "companies"),
    204: ("tasks", "contacts"),
    216: ("tasks", "deals"),
    341: ("deals", "companies"),
    5: ("deals", "companies"),
    279: ("contacts", "companies"),
    1: ("contacts", "companies"),
}
ASSOCIATION_NAMES = {
    "deal_to_company": 341,
    "company_to_deal": 342,
    "contact_to_company": 279,
    "company_to_contact": 280,
    "deal_to_contact": 3,
    "contact_to_deal": 4,
    "invoice_to_company": 179,
    "company_to_invoice": 180,
    "invoice_to_deal": 175,
    "deal_to_invoice": 176,
    "invoice_to_contact": 177,
    "contact_to_invoice": 178,
}


def modified_property(object_type: str) -> str:
    return "lastmodifieddate" if object_type == "contacts" else "hs_lastmodifieddate"


def created_property(object_type: str) -> str:
    return "createdate" if object_type in ("contacts", "companies", "deals") else "hs_createdate"


def hub_error(status: int, message: str, category: str, **extra: Any) -> Response:
    # The face replaces correlationId with the request's own (the X-HubSpot-Correlation-Id
    # header), as HubSpot's answers carry one id in both places.
    body = {"status": "error", "message": message, "correlationId": new_uuid(), "category": category, **extra}
    return Response(status, body, effect=f"rejected: {message}")


def refuse(status: int, message: str, category: str = "VALIDATION_ERROR", **extra: Any) -> Refusal:
    return Refusal(hub_error(status, message, category, **extra))


def _number(value: Any) -> Decimal | None:
    """A property or filter value as a number: numbers as they are, date-times and dates as
    epoch milliseconds (HubSpot compares dates that way)."""
    if value is None:
        return None
    text = str(value).strip()
    if re.fullmatch(r"-?\d+(?:\.\d+)?", text):
        return Decimal(text)
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
        text += "T00:00:00Z"
    moment = parse_iso(text)
    return None if moment is None else Decimal(round(moment * 1000))


_BELOW_ALL, _ABOVE_ALL = Decimal("-Infinity"), Decimal("Infinity")


def _limit(spec: dict[str, Any], end: tuple[str, bool] | None, open_end: Decimal) -> tuple[Decimal, bool] | None:
    """One end of the range a filter sets, as (limit, inclusive): `open_end` when the filter
    leaves that end open, None when its limit is no number or date."""
    if end is None:
        return open_end, True
    limit = _number(spec.get(end[0]))
    return None if limit is None else (limit, end[1])


def _text(value: Any) -> str:
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


class HubSpotFace:
    name = "hubspot"

    def __init__(
        self,
        clock: Clock,
        *,
        limits: bool,
        credentials: dict[str, Any] | None = None,
        token_ttl_s: int = 1800,
        search_delay_s: float = 0.0,
    ) -> None:
        if search_delay_s < 0:
            raise ValueError(f"search_delay_s cannot be negative, not {search_delay_s}")
        self.clock = clock
        self.limits = limits
        self.search_delay_s = search_delay_s
        self.oauth = OAuthIssuer("hubspot", clock, ttl_s=token_ttl_s, credentials=credentials)
        self.objects: dict[str, dict[str, dict[str, Any]]] = {t: {} for t in TYPES}
        # (type, id) -> [(to type, to id, association type id)]
        self.associations: dict[tuple[str, str], list[tuple[str, str, int]]] = {}
        self.versions: dict[str, int] = {t: 0 for t in TYPES}
        self._search_cache: dict[tuple[str, str], tuple[int, list[dict[str, Any]]]] = {}
        self._orders: dict[tuple[str, str], _Ordered] = {}
        self.windows: dict[tuple[str, str], Window] = {}
        self._next_id = 1000
        # Custom properties and their groups, per object type: name -> definition.
        self.property_groups: dict[str, dict[str, dict[str, Any]]] = {t: {} for t in TYPES}
        self.properties: dict[str, dict[str, dict[str, Any]]] = {t: {} for t in TYPES}
        # (type, unique property) -> value -> record id: the write-time uniqueness check.
        self._unique: dict[tuple[str, str], dict[str, str]] = {}
        # type -> record id -> when search first sees it (only while `search_delay_s` hides it)
        self._searchable_at: dict[str, dict[str, float]] = {t: {} for t in TYPES}
        for object_type, presets in PRESET_PROPERTIES.items():
            self.property_groups[object_type][PRESET_GROUP["name"]] = {**PRESET_GROUP, "archived": False}
            for preset in presets:
                self._define(object_type, preset)

    # ------------------------------------------------------------ data

    def load(self, data: dict[str, Any]) -> None:
        for object_type, records in data.items():
            if object_type not in self.objects:
                raise ValueError(f"hubspot: unknown object type {object_type!r}; known: {', '.join(TYPES)}")
            for record in records or []:
                record = dict(record)
                links = record.pop("associations", None) or {}
                ident = str(record["id"])
                props = record.setdefault("properties", {})
                props.setdefault("hs_object_id", ident)
                if record.get("updatedAt"):
                    props.setdefault(modified_property(object_type), record["updatedAt"])
                if record.get("createdAt"):
                    props.setdefault(created_property(object_type), record["createdAt"])
                record.setdefault("archived", False)
                self.objects[object_type][ident] = record
                if ident.isdigit():
                    self._next_id = max(self._next_id, int(ident) + 1)
                for to_type, block in links.items():
                    for link in (block or {}).get("results") or []:
                        self._associate(
                            object_type,
                            ident,
                            to_type,
                            str(link["id"]),
                            ASSOCIATION_NAMES.get(str(link.get("type")), 0),
                        )
            for (indexed_type, prop), _ in list(self._unique.items()):
                if indexed_type == object_type:
                    self._reindex(object_type, prop)
            self.versions[object_type] += 1

    # ------------------------------------------------------------ custom properties

    def _define(self, object_type: str, spec: dict[str, Any]) -> dict[str, Any]:
        """Store a property definition in HubSpot's shape (the properties API's `Property`)."""
        now = iso_ms(self.clock())
        definition = {
            "name": spec["name"],
            "label": spec["label"],
            "type": spec["type"],
            "fieldType": spec["fieldType"],
            "description": str(spec.get("description") or ""),
            "groupName": spec["groupName"],
            "options": list(spec.get("options") or []),
            "displayOrder": int(spec.get("displayOrder", -1)),
            "calculated": False,
            "externalOptions": False,
            "hasUniqueValue": bool(spec.get("hasUniqueValue", False)),
            "hidden": bool(spec.get("hidden", False)),
            "formField": bool(spec.get("formField", False)),
            "modificationMetadata": {"archivable": True, "readOnlyDefinition": False, "readOnlyValue": False},
            "createdAt": now,
            "updatedAt": now,
            "archived": False,
        }
        self.properties[object_type][definition["name"]] = definition
        if definition["hasUniqueValue"]:
            self._reindex(object_type, definition["name"])
        return definition

    def define_property(self, object_type: str, spec: dict[str, Any]) -> dict[str, Any]:
        """Set up a custom property as a portal admin would (its group is made if missing);
        replaces one of that name. For tests: a portal whose key property is not unique."""
        group = spec["groupName"]
        self.property_groups[object_type].setdefault(
            group, {"name": group, "label": group, "displayOrder": -1, "archived": False}
        )
        self.archive_property(object_type, spec["name"])
        return self._define(object_type, spec)

    def archive_property(self, object_type: str, name: str) -> bool:
        """Remove a custom property (HubSpot archives it); its values stay on the records but
        no longer need to be unique. False when there was none."""
        self._unique.pop((object_type, name), None)
        return self.properties[object_type].pop(name, None) is not None

    def _reindex(self, object_type: str, prop: str) -> None:
        """value -> record id for a unique property (the first record keeps a value that
        loaded data repeats: HubSpot never lets such a pair in, a data file might)."""
        index: dict[str, str] = {}
        for ident, record in self.objects[object_type].items():
            value = record["properties"].get(prop)
            if value not in (None, ""):
                index.setdefault(_text(value), ident)
        self._unique[(object_type, prop)] = index

    def _unique_properties(self, object_type: str) -> list[str]:
        return [name for (t, name) in self._unique if t == object_type]

    def _check_unique(self, object_type: str, properties: dict[str, Any], ident: str | None) -> None:
        """Refuse a write that would give a unique property a value another record holds:
        409 CONFLICT naming that record, in the form HubSpot answers a contact whose email
        exists (`"... already exists. Existing ID: N"`, the field in `errors[].in`)."""
        for prop in self._unique_properties(object_type):
            value = properties.get(prop)
            if value in (None, ""):
                continue
            holder = self._unique[(object_type, prop)].get(_text(value))
            if holder is not None and holder != ident:
                noun = _singular(object_type)
                raise refuse(
                    409,
                    f"{noun.capitalize()} already exists. Existing ID: {holder}",
                    "CONFLICT",
                    errors=[
                        {
                            "message": f"A {noun} with {prop} {_text(value)} already exists. Existing ID: {holder}",
                            "in": prop,
                        }
                    ],
                )

    def _index_values(self, object_type: str, ident: str, before: dict[str, Any], after: dict[str, Any]) -> None:
        for prop in self._unique_properties(object_type):
            index = self._unique[(object_type, prop)]
            old, new = before.get(prop), after.get(prop)
            if old not in (None, "") and index.get(_text(old)) == ident:
                del index[_text(old)]
            if new not in (None, ""):
                index[_text(new)] = ident

    def _properties_route(self, request: Request, parts: list[str]) -> Response:
        """`/crm/v3/properties/{type}[/{name}]` and `/crm/v3/properties/{type}/groups[/{name}]`."""
        object_type = parts[3]
        if object_type not in self.objects:
            raise refuse(400, f"Unable to infer object type from: {object_type}")
        rest = parts[4:]
        if rest[:1] == ["groups"]:
            groups = self.property_groups[object_type]
            if len(rest) == 1 and request.method == "GET":
                return Response(200, {"results": list(groups.values())})
            if len(rest) == 1 and request.method == "POST":
                return self._create_group(request, object_type)
            if len(rest) == 2 and request.method == "GET":
                if rest[1] not in groups:
                    raise refuse(404, f"Property group {rest[1]} does not exist on {object_type}", "OBJECT_NOT_FOUND")
                return Response(200, groups[rest[1]])
        elif not rest and request.method == "GET":
            return Response(200, {"results": list(self.properties[object_type].values())})
        elif not rest and request.method == "POST":
            return self._create_property(request, object_type)
        elif len(rest) == 1 and request.method == "GET":
            definition = self.properties[object_type].get(rest[0])
            if definition is None:
                raise refuse(404, f"Property {rest[0]} does not exist on {object_type}", "OBJECT_NOT_FOUND")
            return Response(200, definition)
        elif len(rest) == 1 and request.method == "DELETE":
            if not self.archive_property(object_type, rest[0]):
                raise refuse(404, f"Property {rest[0]} does not exist on {object_type}", "OBJECT_NOT_FOUND")
            return Response(204, None, effect=f"archived property {object_type}.{rest[0]}")
        raise refuse(404, f"No route for {request.method} {request.path}", "OBJECT_NOT_FOUND")

    def _create_group(self, request: Request, object_type: str) -> Response:
        body = self._body(request)
        name, label = body.get("name"), body.get("label")
        if not isinstance(name, str) or not PROPERTY_NAME.fullmatch(name) or not label:
            raise refuse(400, "A property group needs a name (lower case letters, digits, _) and a label")
        if name in self.property_groups[object_type]:
            raise refuse(409, f"A property group named '{name}' already exists.", "OBJECT_ALREADY_EXISTS")
        group = {
            "name": name,
            "label": str(label),
            "displayOrder": int(body.get("displayOrder", -1)),
            "archived": False,
        }
        self.property_groups[object_type][name] = group
        return Response(201, group, effect=f"created property group {object_type}.{name}")

    def _create_property(self, request: Request, object_type: str) -> Response:
        body = self._body(request)
        missing = [k for k in ("name", "label", "type", "fieldType", "groupName") if not body.get(k)]
        if missing:
            raise refuse(400, f"Missing required fields for a property: {', '.join(missing)}")
        name = body["name"]
        if not isinstance(name, str) or not PROPERTY_NAME.fullmatch(name):
            raise refuse(400, f"Invalid property name {name!r}: lower case letters, digits and _, a letter first")
        if body["type"] not in PROPERTY_TYPES:
            raise refuse(400, f"Invalid property type {body['type']!r}")
        if body["groupName"] not in self.property_groups[object_type]:
            raise refuse(400, f"Property group {body['groupName']} does not exist on {object_type}")
        if body.get("hasUniqueValue") and body["type"] not in ("string", "number"):
            raise refuse(400, "Only single-line text and number properties can require unique values")
        if name in self.properties[object_type]:
            raise refuse(409, f"A property named '{name}' already exists.", "OBJECT_ALREADY_EXISTS")
        definition = self._define(object_type, body)
        unique = " (unique values)" if definition["hasUniqueValue"] else ""
        return Response(201, definition, effect=f"created property {object_type}.{name}{unique}")

    def _searchable(self, object_type: str, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """`records` without those the search index has not taken in yet (`search_delay_s`)."""
        pending = self._searchable_at[object_type]
        if not pending:
            return records
        now = self.clock()
        for ident in [i for i, at in pending.items() if at <= now]:
            del pending[ident]
        if not pending:
            return records
        return [r for r in records if r["id"] not in pending]

    def _associate(self, from_type: str, from_id: str, to_type: str, to_id: str, type_id: int) -> None:
        for a, b, c, d in ((from_type, from_id, to_type, to_id), (to_type, to_id, from_type, from_id)):
            links = self.associations.setdefault((a, b), [])
            if (c, d, type_id) not in links:
                links.append((c, d, type_id))

    # ------------------------------------------------------------ gatekeeping

    def _gate(self, request: Request, search: bool) -> tuple[str, dict[str, str]]:
        bearer = bearer_of(request)
        if not self.oauth.bearer_ok(bearer):
            raise refuse(
                401,
                "Authentication credentials not found. This API supports OAuth 2.0 authentication.",
                "INVALID_AUTHENTICATION",
            )
        assert bearer is not None
        if not self.limits:
            return bearer, {}
        oauth_app = bearer in self.oauth.access_tokens and self.oauth.access_tokens[bearer] != float("inf")
        per_10s = 100 if oauth_app else 190
        general = self.windows.setdefault((bearer, "ten"), Window(per_10s, 10.0, self.clock))
        windows = [("TEN_SECONDLY_ROLLING", general)]
        if search:
            windows.insert(0, ("SECONDLY", self.windows.setdefault((bearer, "search"), Window(4, 1.0, self.clock))))
        for policy, window in windows:
            wait = window.retry_after()
            if wait > 0:
                response = hub_error(
                    429,
                    f"You have reached your {policy.lower()} limit.",
                    "RATE_LIMITS",
                    errorType="RATE_LIMIT",
                    policyName=policy,
                )
                response.headers["Retry-After"] = retry_after_header(wait)
                raise Refusal(response)
        for _, window in windows:
            window.count()
        headers = {
            "X-HubSpot-RateLimit-Interval-Milliseconds": "10000",
            "X-HubSpot-RateLimit-Max": str(per_10s),
            "X-HubSpot-RateLimit-Remaining": str(general.remaining()),
        }
        if search:
            headers["X-HubSpot-RateLimit-Secondly"] = "4"
            headers["X-HubSpot-RateLimit-Secondly-Remaining"] = str(windows[0][1].remaining())
        return bearer, headers

    # ------------------------------------------------------------ dispatch

    def begin(self, request: Request) -> Response | None:
        """At arrival: the token, and its rate windows counted now, before the latency (a
        client pacing itself by the limits sends at that pace; it must be counted at it)."""
        if request.path == "/oauth/token":
            return None
        try:
            request.admitted = self._gate(request, self._is_search(request))
        except Refusal as refusal:
            return self._correlated(request, refusal.response)
        return None

    def handle(self, request: Request) -> Response:
        if request.path == "/oauth/token" and request.method == "POST":
            return self.oauth.token_endpoint(request)
        parts = request.path.strip("/").split("/")
        try:
            admitted = request.admitted or self._gate(request, self._is_search(request))
            _, headers = admitted
            response = self._route(request, parts)
            response.headers.update(headers)
            return self._correlated(request, response)
        except Refusal as refusal:
            return self._correlated(request, refusal.response)

    @staticmethod
    def _is_search(request: Request) -> bool:
        parts = request.path.strip("/").split("/")
        return len(parts) == 5 and parts[4] == "search" and request.method == "POST"

    @staticmethod
    def _correlated(request: Request, response: Response) -> Response:
        """An error body carries the request's correlation id, the one in the header."""
        body = response.body
        if request.request_id and isinstance(body, dict) and body.get("status") == "error" and "correlationId" in body:
            body["correlationId"] = request.request_id
        return response

    def _route(self, request: Request, parts: list[str]) -> Response:
        if parts[:3] == ["crm", "v3", "properties"] and len(parts) >= 4:
            return self._properties_route(request, parts)
        if (
            parts[:3] == ["crm", "v4", "associations"]
            and len(parts) == 7
            and parts[5:] == ["batch", "read"]
            and request.method == "POST"
        ):
            return self._association_read(request, parts[3], parts[4])
        if parts[:3] != ["crm", "v3", "objects"] or len(parts) < 4:
            raise refuse(404, f"No route for {request.method} {request.path}", "OBJECT_NOT_FOUND")
        object_type = parts[3]
        if object_type not in self.objects:
            raise refuse(400, f"Unable to infer object type from: {object_type}")
        if len(parts) == 5 and parts[4] == "search" and request.method == "POST":
            return self._search(request, object_type)
        if len(parts) == 6 and parts[4] == "batch" and request.method == "POST":
            return self._batch(request, object_type, parts[5])
        if len(parts) == 4 and request.method == "GET":
            return self._list(request, object_type)
        if len(parts) == 4 and request.method == "POST":
            return self._create(request, object_type)
        if len(parts) == 5 and request.method == "GET":
            return self._read(request, object_type, parts[4])
        if len(parts) == 5 and request.method == "PATCH":
            return self._update(request, object_type, parts[4])
        raise refuse(404, f"No route for {request.method} {request.path}", "OBJECT_NOT_FOUND")

    def _body(self, request: Request) -> dict[str, Any]:
        try:
            body = request.json()
        except ValueError:
            raise refuse(400, "Invalid input JSON on line 1") from None
        if not isinstance(body, dict):
            raise refuse(400, "Invalid input JSON: expected an object")
        return body

    # ------------------------------------------------------------ shaping

    def _shape(
        self, object_type: str, record: dict[str, Any], wanted: list[str] | None, *, everything: bool = False
    ) -> dict[str, Any]:
        props = record["properties"]
        if everything:
            names = list(props)
        else:
            names = list(wanted) if wanted else list(DEFAULT_PROPERTIES.get(object_type, []))
            names += ["hs_object_id", created_property(object_type), modified_property(object_type)]
        shown = {n: _text(props[n]) for n in dict.fromkeys(names) if props.get(n) is not None}
        out = {
            "id": record["id"],
            "properties": shown,
            "createdAt": record.get("createdAt"),
            "updatedAt": record.get("updatedAt"),
            "archived": bool(record.get("archived")),
        }
        if record.get("archived") and record.get("archivedAt"):
            out["archivedAt"] = record["archivedAt"]
        return out

    @staticmethod
    def _wanted(request: Request) -> list[str] | None:
        values = [p for v in request.query.get("properties", []) for p in v.split(",") if p]
        return values or None

    # ------------------------------------------------------------ search

    def _search(self, request: Request, object_type: str) -> Response:
        body = self._body(request)
        limit = body.get("limit", 10)
        if not isinstance(limit, int) or not 1 <= limit <= MAX_SEARCH_LIMIT:
            raise refuse(400, f"limit must be between 1 and {MAX_SEARCH_LIMIT}, not {limit}")
        try:
            after = int(str(body.get("after") or "0"))
        except ValueError:
            raise refuse(400, f"after must be a number, not {body.get('after')!r}") from None
        if after >= SEARCH_CAP:
            raise refuse(
                400,
                f"Search results are limited to {SEARCH_CAP} results; after={after} is past them. Narrow the query.",
            )
        matches = self._searchable(object_type, self._matches(object_type, body))
        # Nothing past the 10,000th result, whatever `after` and `limit`: the page stops at
        # the ceiling. Its `paging.next.after` then says "10000" (HubSpot's answer there);
        # following it gets the 400 above, so a client must start a new query (a narrower
        # window) rather than mistake the ceiling for the end of the data.
        end = min(after + limit, len(matches), SEARCH_CAP)
        answer: dict[str, Any] = {
            "total": len(matches),
            "results": [self._shape(object_type, r, body.get("properties")) for r in matches[after:end]],
        }
        if end < len(matches):
            answer["paging"] = {"next": {"after": str(end)}}
        return Response(200, answer)

    def _matches(self, object_type: str, body: dict[str, Any]) -> list[dict[str, Any]]:
        groups = body.get("filterGroups") or []
        sorts = body.get("sorts") or []
        query = body.get("query")
        key = (object_type, json.dumps([groups, sorts, query], sort_keys=True, default=str))
        cached = self._search_cache.get(key)
        if cached is not None and cached[0] == self.versions[object_type]:
            return cached[1]
        checks = self._filter_groups(groups)
        ordered = self._ordered(object_type, sorts)
        records = ordered.records
        span = ordered.span(groups)
        if span is not None:  # one group bounding the sort property: its other filters remain
            (lo, hi), used = span
            records = records[lo:hi]
            checks = [[f for i, f in enumerate(checks[0]) if i != used]]
        if any(checks) or query:
            records = [
                r
                for r in records
                if (not checks or any(all(f(r) for f in g) for g in checks)) and self._query_matches(r, query)
            ]
        if len(self._search_cache) > SEARCH_CACHE_SIZE:
            self._search_cache.clear()
        self._search_cache[key] = (self.versions[object_type], records)
        return records

    def _ordered(self, object_type: str, sorts: list[Any]) -> _Ordered:
        """The type's records (not archived) in the order of `sorts`, kept for this version."""
        key = (object_type, json.dumps(sorts, sort_keys=True, default=str))
        cached = self._orders.get(key)
        if cached is not None and cached.version == self.versions[object_type]:
            return cached
        live = [r for r in self.objects[object_type].values() if not r.get("archived")]
        ordered = _Ordered(self.versions[object_type], self._sorted(live, sorts), *_sort_of(sorts))
        if len(self._orders) > SEARCH_CACHE_SIZE:
            self._orders.clear()
        self._orders[key] = ordered
        return ordered

    def _filter_groups(self, groups: list[Any]) -> list[list[RecordCheck]]:
        if len(groups) > 5:
            raise refuse(400, "There can be at most 5 filterGroups in a search request.")
        if sum(len(g.get("filters") or []) for g in groups) > 18:
            raise refuse(400, "There can be at most 18 filters in a search request.")
        compiled: list[list[RecordCheck]] = []
        for group in groups:
            filters = group.get("filters") or []
            if len(filters) > 6:
                raise refuse(400, "There can be at most 6 filters in a filterGroup.")
            compiled.append([self._filter(f) for f in filters])
        return compiled

    @staticmethod
    def _filter(spec: dict[str, Any]) -> RecordCheck:
        name, op = spec.get("propertyName"), spec.get("operator")
        if not name or op not in OPERATORS:
            raise refuse(
                400, f"Invalid filter {json.dumps(spec, default=str)}: propertyName and a known operator are required"
            )
        value, high, values = spec.get("value"), spec.get("highValue"), spec.get("values") or []

        def get(record: dict[str, Any]) -> Any:
            if name == "hs_object_id":
                return record["id"]
            return record["properties"].get(name)

        def compare(actual: Any, wanted: Any) -> int | None:
            a, b = _number(actual), _number(wanted)
            if a is not None and b is not None:
                return (a > b) - (a < b)
            if actual is None or wanted is None:
                return None
            x, y = _text(actual).lower(), _text(wanted).lower()
            return (x > y) - (x < y)

        def tokens(actual: Any) -> list[str]:
            return [t for t in re.split(r"[\s,;.@]+", _text(actual).lower()) if t]

        def contains(actual: Any) -> bool:
            pattern = _text(value).lower()
            return any(fnmatch.fnmatchcase(t, pattern) for t in tokens(actual)) or fnmatch.fnmatchcase(
                _text(actual).lower(), pattern
            )

        tests: dict[str, Callable[[Any], bool]] = {
            "EQ": lambda a: compare(a, value) == 0,
            "NEQ": lambda a: compare(a, value) != 0,
            "GT": lambda a: (compare(a, value) or 0) > 0,
            "GTE": lambda a: compare(a, value) in (0, 1),
            "LT": lambda a: (compare(a, value) or 0) < 0,
            "LTE": lambda a: compare(a, value) in (0, -1),
            "BETWEEN": lambda a: compare(a, value) in (0, 1) and compare(a, high) in (0, -1),
            "HAS_PROPERTY": lambda a: a is not None and _text(a) != "",
            "NOT_HAS_PROPERTY": lambda a: a is None or _text(a) == "",
            "IN": lambda a: a is not None and any(compare(a, v) == 0 for v in values),
            "NOT_IN": lambda a: a is None or all(compare(a, v) != 0 for v in values),
            "CONTAINS_TOKEN": lambda a: a is not None and contains(a),
            "NOT_CONTAINS_TOKEN": lambda a: a is None or not contains(a),
        }
        test = tests[op]
        return lambda record: test(get(record))

    @staticmethod
    def _query_matches(record: dict[str, Any], query: Any) -> bool:
        if not query:
            return True
        needle = str(query).lower()
        return any(needle in _text(record["properties"].get(p)).lower() for p in QUERY_PROPERTIES)

    @staticmethod
    def _sorted(records: list[dict[str, Any]], sorts: list[Any]) -> list[dict[str, Any]]:
        """One sort (HubSpot allows one): the document's strings ("prop", "-prop") or the
        guides' objects ({"propertyName", "direction"}); ties and no sort: by object id."""
        name, descending = _sort_of(sorts)
        by_id = sorted(records, key=lambda r: int(r["id"]) if str(r["id"]).isdigit() else 0)
        if name is None:
            return by_id
        if name == "hs_object_id":
            return list(reversed(by_id)) if descending else by_id

        def key(record: dict[str, Any]) -> tuple[int, Any]:
            value = record["properties"].get(name)
            number = _number(value)
            if number is not None:
                return (1, number)
            return (0 if value is None else 2, _text(value).lower())

        present = [r for r in by_id if r["properties"].get(name) not in (None, "")]
        missing = [r for r in by_id if r["properties"].get(name) in (None, "")]
        ordered = sorted(present, key=key, reverse=descending)
        return ordered + missing  # unset values last either way

    # ------------------------------------------------------------ list, read, update, create

    def _list(self, request: Request, object_type: str) -> Response:
        try:
            limit = int(request.arg("limit", "10") or "10")
            after = int(request.arg("after", "0") or "0")
        except ValueError:
            raise refuse(400, "limit and after must be numbers") from None
        if not 1 <= limit <= MAX_LIST_LIMIT:
            raise refuse(400, f"limit must be between 1 and {MAX_LIST_LIMIT}, not {limit}")
        archived = (request.arg("archived") or "false").lower() == "true"
        records = [r for r in self.objects[object_type].values() if bool(r.get("archived")) == archived]
        records.sort(key=lambda r: int(r["id"]) if str(r["id"]).isdigit() else 0)
        page = records[after : after + limit]
        wanted = self._wanted(request)
        with_links = [a for v in request.query.get("associations", []) for a in v.split(",") if a]
        results = [self._with_associations(object_type, self._shape(object_type, r, wanted), with_links) for r in page]
        answer: dict[str, Any] = {"results": results}
        if after + limit < len(records):
            answer["paging"] = {
                "next": {"after": str(after + limit), "link": f"/crm/v3/objects/{object_type}?after={after + limit}"}
            }
        return Response(200, answer)

    def _with_associations(self, object_type: str, shaped: dict[str, Any], to_types: list[str]) -> dict[str, Any]:
        if not to_types:
            return shaped
        block = {}
        for to_type in to_types:
            links = [(t, i, k) for t, i, k in self.associations.get((object_type, shaped["id"]), []) if t == to_type]
            if links:
                names = {v: k for k, v in ASSOCIATION_NAMES.items()}
                block[to_type] = {
                    "results": [{"id": i, "type": names.get(k, f"{object_type[:-1]}_to_{t[:-1]}")} for t, i, k in links]
                }
        if block:
            shaped["associations"] = block
        return shaped

    def _record(self, object_type: str, ident: str, request: Request) -> dict[str, Any]:
        verb = "read" if request.method == "GET" else "update"
        archived_ok = (request.arg("archived") or "false").lower() == "true"
        return self._find(object_type, ident, request.arg("idProperty"), archived_ok=archived_ok, verb=verb)

    def _find(
        self, object_type: str, ident: str, id_property: str | None, *, archived_ok: bool, verb: str
    ) -> dict[str, Any]:
        """The record `ident` names: its id, or with `id_property` a value of that unique
        property. Refused with 404 when none (or only an archived one, unless `archived_ok`)."""
        if id_property and id_property != "hs_object_id":
            # `ident` is a value of a unique property (HubSpot: "a property whose values are
            # unique for this object type"); any other property is refused.
            if (object_type, id_property) not in self._unique:
                raise refuse(400, f"Unable to perform {verb} by non-unique {object_type} property {id_property}")
            value = unquote(ident)
            holder = self._unique[(object_type, id_property)].get(value)
            if holder is None:
                raise refuse(404, f"Object not found. No {object_type} with {id_property} {value}", "OBJECT_NOT_FOUND")
            ident = holder
        record = self.objects[object_type].get(ident)
        if record is None or (record.get("archived") and not archived_ok):
            raise refuse(
                404, f"Object not found.  objectId are usually numeric.  ({object_type} {ident})", "OBJECT_NOT_FOUND"
            )
        return record

    def _read(self, request: Request, object_type: str, ident: str) -> Response:
        record = self._record(object_type, ident, request)
        with_links = [a for v in request.query.get("associations", []) for a in v.split(",") if a]
        shaped = self._shape(object_type, record, self._wanted(request))
        return Response(200, self._with_associations(object_type, shaped, with_links))

    def _update(self, request: Request, object_type: str, ident: str) -> Response:
        record = self._record(object_type, ident, request)
        properties = self._apply_update(object_type, record, self._body(request).get("properties"))
        self.versions[object_type] += 1
        return Response(
            200,
            self._shape(object_type, record, None, everything=True),
            effect=f"updated {object_type} {ident}: {', '.join(properties)}",
        )

    def _apply_update(self, object_type: str, record: dict[str, Any], properties: Any) -> dict[str, Any]:
        """Write `properties` onto `record` after the checks HubSpot makes (an object of
        values, no read-only property, no unique value another record holds), and return
        them; refused before anything is written. The caller bumps the type's version."""
        if not isinstance(properties, dict):
            raise refuse(400, "properties must be an object of property values")
        read_only = sorted(READ_ONLY_PROPERTIES & set(properties))
        if read_only:
            raise refuse(
                400,
                f"Property values were not valid: {', '.join(read_only)} read only",
                errors=[
                    {"message": f"{name} is a read only property; its value cannot be set.", "code": "READ_ONLY_VALUE"}
                    for name in read_only
                ],
            )
        self._check_unique(object_type, properties, record["id"])
        before = dict(record["properties"])
        now = iso_ms(self.clock())
        for name, value in properties.items():
            record["properties"][name] = _text(value)
        self._index_values(object_type, record["id"], before, record["properties"])
        record["properties"][modified_property(object_type)] = now
        record["updatedAt"] = now
        return properties

    def _create(self, request: Request, object_type: str) -> Response:
        properties, links = self._creation(object_type, self._body(request))
        self._check_unique(object_type, properties, None)
        record = self._insert(object_type, properties, links)
        self.versions[object_type] += 1
        return Response(
            201,
            self._shape(object_type, record, None, everything=True),
            effect=f"created {object_type[:-1]} {record['id']}",
        )

    def _creation(self, object_type: str, body: dict[str, Any]) -> tuple[dict[str, Any], list[tuple[str, str, int]]]:
        """A create input's properties and associations, refused (400) when malformed: no
        properties object, a note or task without `hs_timestamp`, an association to nothing.
        The unique-value check is the caller's (a batch checks its inputs together)."""
        properties = body.get("properties")
        if not isinstance(properties, dict):
            raise refuse(400, "properties must be an object of property values")
        if object_type in ("notes", "tasks") and not properties.get("hs_timestamp"):
            raise refuse(
                400,
                "Property values were not valid: hs_timestamp is required",
                errors=[{"message": "hs_timestamp is required", "code": "REQUIRED_FIELD"}],
            )
        links = []
        for association in body.get("associations") or []:
            to_id = str((association.get("to") or {}).get("id", ""))
            for kind in association.get("types") or []:
                type_id = int(kind.get("associationTypeId", 0))
                target = ASSOCIATION_TARGETS.get(type_id)
                if target is not None and target[0] == object_type:
                    if to_id not in self.objects[target[1]]:
                        raise refuse(400, f"One or more associations are invalid: {target[1]} {to_id} does not exist")
                    links.append((target[1], to_id, type_id))
                else:
                    links.append(("unknown", to_id, type_id))
        return properties, links

    def _insert(
        self, object_type: str, properties: dict[str, Any], links: list[tuple[str, str, int]]
    ) -> dict[str, Any]:
        """Store a new record (checked already) with its associations, hidden from search
        for `search_delay_s`. The caller bumps the type's version."""
        ident = str(self._next_id)
        self._next_id += 1
        moment = self.clock()
        now = iso_ms(moment)
        props = {name: _text(value) for name, value in properties.items()}
        props.update({"hs_object_id": ident, created_property(object_type): now, modified_property(object_type): now})
        record = {"id": ident, "properties": props, "createdAt": now, "updatedAt": now, "archived": False}
        self.objects[object_type][ident] = record
        self._index_values(object_type, ident, {}, props)
        if self.search_delay_s:
            self._searchable_at[object_type][ident] = moment + self.search_delay_s
        for to_type, to_id, type_id in links:
            self._associate(object_type, ident, to_type, to_id, type_id)
        return record

    # ------------------------------------------------------------ batch create, update, read
    #
    # Each batch request passes the rate windows once (`_gate`, like any request): a batch of
    # 100 costs what one single write costs, which is why a client batches. The journal gets
    # one effect per input, joined with "; " in input order ("created note 1001; created note
    # 1002", "updated deals 300: amount; rejected: ..."), as Xero's PUT /Payments does.

    def _batch(self, request: Request, object_type: str, action: str) -> Response:
        if action == "create" and object_type in ("notes", "tasks"):
            return self._batch_create(request, object_type)
        if action == "update":
            return self._batch_update(request, object_type)
        if action == "read":
            return self._batch_read(request, object_type)
        raise refuse(404, f"No route for {request.method} {request.path}", "OBJECT_NOT_FOUND")

    def _batch_inputs(self, body: dict[str, Any]) -> list[dict[str, Any]]:
        """A batch body's `inputs`: a list of objects, at most MAX_BATCH_INPUTS of them
        (more: 400 VALIDATION_ERROR, and nothing of the batch is done)."""
        inputs = body.get("inputs")
        if not isinstance(inputs, list) or not all(isinstance(item, dict) for item in inputs):
            raise refuse(400, "Invalid input JSON: inputs must be a list of objects")
        if len(inputs) > MAX_BATCH_INPUTS:
            raise refuse(
                400, f"Too many inputs: {len(inputs)}. A batch request takes at most {MAX_BATCH_INPUTS} inputs."
            )
        return inputs

    def _batch_answer(
        self,
        success_status: int,
        started: str,
        results: list[dict[str, Any]],
        errors: list[dict[str, Any]],
        effects: list[str],
    ) -> Response:
        """HubSpot's batch answer: `success_status` with BatchResponseSimplePublicObject when
        every input succeeded, otherwise 207 with BatchResponseSimplePublicObjectWithErrors
        (`numErrors`, `errors`), the inputs that succeeded still in `results`."""
        answer: dict[str, Any] = {
            "status": "COMPLETE",
            "results": results,
            "startedAt": started,
            "completedAt": iso_ms(self.clock()),
        }
        if errors:
            answer["numErrors"] = len(errors)
            answer["errors"] = errors
        return Response(207 if errors else success_status, answer, effect="; ".join(effects) or "answered")

    @staticmethod
    def _batch_error(refusal: Refusal, ids: list[str]) -> dict[str, Any]:
        """One input's refusal as a StandardError naming the ids it concerns. `context` holds
        them under `ids`, the key HubSpot's answers use, and under `id` too (the form our
        brief for the batch adapter gives), so a reader of either finds them."""
        body = refusal.response.body
        return {
            "status": "error",
            "category": body["category"],
            "message": body["message"],
            "context": {"ids": list(ids), "id": list(ids)},
            "errors": list(body.get("errors") or []),
            "links": {},
        }

    def _batch_update(self, request: Request, object_type: str) -> Response:
        """`POST /crm/v3/objects/{type}/batch/update`: each input as a single PATCH would be
        (its `idProperty`, else the query's, picks a unique property; the same checks).

        Inputs are applied one by one: those that pass are written even when others fail.
        All passed: 200. Some or all failed: 207 with one StandardError per failed input
        (OBJECT_NOT_FOUND for an unknown id, VALIDATION_ERROR for a read-only property,
        CONFLICT for a unique value another record holds) and the successes in `results`.
        Every input failing is still a 207, with `results` empty: HubSpot's document gives the
        batch endpoints 200/207 for what happened to the inputs and its `Error` (4xx) for a
        request it could not take at all (bad body, too many inputs, no token), and a refused
        input is the former whatever the others did. Two inputs naming the same id refuse the
        whole batch (400), as HubSpot does ("Duplicate IDs found in batch input")."""
        body = self._body(request)
        inputs = self._batch_inputs(body)
        default_id_property = request.arg("idProperty") or body.get("idProperty")
        named = [(str(item.get("id", "")), item.get("idProperty") or default_id_property) for item in inputs]
        repeated = sorted({ident for ident, prop in named if named.count((ident, prop)) > 1})
        if repeated:
            raise refuse(400, f"Duplicate IDs found in batch input: {repeated}")
        started = iso_ms(self.clock())
        results, errors, effects = [], [], []
        for item, (ident, id_property) in zip(inputs, named, strict=True):
            try:
                record = self._find(object_type, ident, id_property, archived_ok=False, verb="update")
                properties = self._apply_update(object_type, record, item.get("properties"))
            except Refusal as refusal:
                errors.append(self._batch_error(refusal, [ident]))
                effects.append(f"rejected: {refusal.response.body['message']}")
                continue
            results.append(self._shape(object_type, record, None, everything=True))
            effects.append(f"updated {object_type} {ident}: {', '.join(properties)}")
        if results:
            self.versions[object_type] += 1
        return self._batch_answer(200, started, results, errors, effects)

    def _batch_create(self, request: Request, object_type: str) -> Response:
        """`POST /crm/v3/objects/{notes|tasks}/batch/create`: each input as the single create
        makes it (`hs_timestamp`, associations, the unique-value check, `search_delay_s`).

        All or nothing: every input is checked before any is made, and one bad input refuses
        the whole batch with the single create's answer for it and creates nothing; 201 with
        every object otherwise. A unique value (`ar_action_key`) another record holds answers
        409 CONFLICT "... already exists. Existing ID: N", naming the first such input, as
        HubSpot answers a batch create of contacts whose email exists (one error for the
        batch, only the first duplicate named: HubSpot/hubspot-api-python#51); two inputs
        carrying the same unique value answer 400 VALIDATION_ERROR. The sandbox therefore
        never answers 207 here, though the document allows it: a client must take the 409 as
        "these may exist already" and find out which, e.g. by batch read on the key."""
        inputs = self._batch_inputs(self._body(request))
        checked = [self._creation(object_type, item) for item in inputs]
        for prop in self._unique_properties(object_type):
            values = [_text(p.get(prop)) for p, _ in checked if p.get(prop) not in (None, "")]
            repeated = sorted({v for v in values if values.count(v) > 1})
            if repeated:
                raise refuse(400, f"Duplicate values for unique property {prop} in batch input: {repeated}")
        for properties, _ in checked:
            self._check_unique(object_type, properties, None)
        started = iso_ms(self.clock())
        records = [self._insert(object_type, properties, links) for properties, links in checked]
        if records:
            self.versions[object_type] += 1
        return self._batch_answer(
            201,
            started,
            [self._shape(object_type, r, None, everything=True) for r in records],
            [],
            [f"created {object_type[:-1]} {r['id']}" for r in records],
        )

    def _batch_read(self, request: Request, object_type: str) -> Response:
        """`POST /crm/v3/objects/{type}/batch/read`: the objects by id, or by a unique
        property's values with `idProperty` (400 for a property without unique values), with
        `properties` (the type's defaults when empty) and `?archived=`.

        All found: 200. Some or none found: 207 with the found in `results` and one
        OBJECT_NOT_FOUND error listing the missing ids in its context, as HubSpot answers."""
        body = self._body(request)
        inputs = self._batch_inputs(body)
        id_property = body.get("idProperty")
        if id_property and id_property != "hs_object_id" and (object_type, id_property) not in self._unique:
            raise refuse(400, f"Unable to perform read by non-unique {object_type} property {id_property}")
        archived_ok = (request.arg("archived") or "false").lower() == "true"
        wanted = [p for p in body.get("properties") or [] if isinstance(p, str)] or None
        started = iso_ms(self.clock())
        results: dict[str, dict[str, Any]] = {}
        missing: list[str] = []
        for item in inputs:
            ident = str(item.get("id", ""))
            try:
                record = self._find(object_type, ident, id_property, archived_ok=archived_ok, verb="read")
            except Refusal:
                if ident not in missing:
                    missing.append(ident)
                continue
            results.setdefault(record["id"], self._shape(object_type, record, wanted))
        errors = []
        if missing:
            noun = _singular(object_type).upper()
            message = f"Could not get some {noun} objects, they may be deleted or not exist. Check that ids are valid."
            errors.append(self._batch_error(refuse(404, message, "OBJECT_NOT_FOUND"), missing))
        answer = self._batch_answer(200, started, list(results.values()), errors, [])
        answer.effect = None  # a read: the server does not journal it
        return answer

    def _association_read(self, request: Request, from_type: str, to_type: str) -> Response:
        inputs = self._body(request).get("inputs") or []
        started = iso_ms(self.clock())
        results = []
        for item in inputs:
            ident = str(item.get("id"))
            links = [(i, k) for t, i, k in self.associations.get((from_type, ident), []) if t == to_type]
            if not links:
                continue
            grouped: dict[str, list[int]] = {}
            for to_id, type_id in links:
                grouped.setdefault(to_id, []).append(type_id)
            results.append(
                {
                    "from": {"id": ident},
                    "to": [
                        {
                            "toObjectId": int(to_id) if to_id.isdigit() else to_id,
                            "associationTypes": [
                                {"category": "HUBSPOT_DEFINED", "typeId": k, "label": None} for k in kinds
                            ],
                        }
                        for to_id, kinds in grouped.items()
                    ],
                }
            )
        return Response(
            200, {"status": "COMPLETE", "results": results, "startedAt": started, "completedAt": iso_ms(self.clock())}
        )


def _singular(object_type: str) -> str:
    return "company" if object_type == "companies" else object_type.removesuffix("s")


def _sort_of(sorts: list[Any]) -> tuple[str | None, bool]:
    """(property, descending) of a search's one sort; (None, False) without one."""
    if len(sorts) > 1:
        raise refuse(400, "Only one sort is allowed in a search request.")
    if not sorts:
        return None, False
    sort = sorts[0]
    if isinstance(sort, str):
        return sort.lstrip("-"), sort.startswith("-")
    if isinstance(sort, dict) and sort.get("propertyName"):
        return sort["propertyName"], str(sort.get("direction", "ASCENDING")).upper().startswith("DESC")
    raise refuse(400, f"Invalid sort {sort!r}")


@dataclass
class _Ordered:
    """A type's records in one sort order, for one version of its data. When every record
    has a number (or date) in the sort property, `keys` holds them in that order (negated
    when descending, so that they ascend) and a range on that property is a slice."""

    version: int
    records: list[dict[str, Any]]
    prop: str | None
    descending: bool

    def __post_init__(self) -> None:
        self.keys: list[Decimal] | None = None
        if self.prop is None or self.prop == "hs_object_id":
            return
        keys: list[Decimal] = []
        for record in self.records:
            number = _number(record["properties"].get(self.prop))
            if number is None:
                return  # a text, or a missing value (sorted last): filters compare those otherwise
            keys.append(-number if self.descending else number)
        self.keys = keys

    def span(self, groups: list[Any]) -> tuple[tuple[int, int], int] | None:
        """((first, end), index of the filter used) when one filter group bounds the sort
        property with a number or date; None when the filters must be tried record by record."""
        if self.keys is None or len(groups) != 1:
            return None
        for index, spec in enumerate(groups[0].get("filters") or []):
            bounds = RANGES.get(spec.get("operator"))
            if spec.get("propertyName") != self.prop or bounds is None:
                continue
            low, high = _limit(spec, bounds[0], _BELOW_ALL), _limit(spec, bounds[1], _ABOVE_ALL)
            if low is None or high is None:
                continue
            if self.descending:  # the keys are the values negated
                low, high = (-high[0], high[1]), (-low[0], low[1])
            first = (bisect_left if low[1] else bisect_right)(self.keys, low[0])
            end = (bisect_right if high[1] else bisect_left)(self.keys, high[0])
            return (first, max(first, end)), index
        return None
