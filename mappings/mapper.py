"""Apply a mapping: raw provider objects in, canonical records out, bad records reported.

`Mapper.map_page()` maps what it can and returns a `MappingError` (provider, object id,
field, reason) for each record it cannot; the caller stores the rest and counts the errors.

Text from a provider is bounded here, for every provider alike: a field or hint longer than
`TEXT_LIMIT` characters (numbers, names, e-mails, references, methods), or `FREE_TEXT_LIMIT`
for free text (`FREE_TEXT_FIELDS`: line descriptions, remittance text, refund reasons), keeps
its first characters and ends in "…" (an identifier-like field also keeps a digest of the
whole value after it, so two values that differ only past the cut never compare equal).
`MappedRecord.truncated` names each such field with its original length (stored in the
record's view under `_sync.truncated`), and one warning is logged per record. An id is never
cut (a cut id could name another record): a record whose own id is too long is refused, and a
link whose id is too long is left out (and noted).
"""

from __future__ import annotations

import copy
import hashlib
import importlib
import logging
import tomllib
from dataclasses import dataclass, field
from datetime import datetime
from importlib import resources
from typing import Any

from pydantic import BaseModel, ValidationError

from connector.errors import ConfigError, MappingError
from connector.mappings.spec import (
    RECORD_MODELS,
    FieldRef,
    FieldSpec,
    MappingSpec,
    StreamSpec,
    as_field,
)
from connector.mappings.transforms import TRANSFORMS, TransformContext
from connector.model import Ref

logger = logging.getLogger(__name__)

_MISSING = object()

TEXT_LIMIT = 512  # characters of an identifier, number, name, e-mail or reference
FREE_TEXT_LIMIT = 4096  # characters of free text
FREE_TEXT_FIELDS = frozenset({"description", "remittance", "reason"})
_REASON_LIMIT = 300  # characters of a mapping error's reason (it may quote the raw value)


@dataclass
class MappedRecord:
    """One canonical record as one system sees it, with what is needed to link it."""

    stream: str
    ref: Ref
    record: BaseModel
    links: dict[str, str] = field(default_factory=dict)  # role -> remote id in the same system
    hints: dict[str, Any] = field(default_factory=dict)  # cross-system linking facts
    deleted: bool = False
    # field path ("number", "lines.0.description", "hints.email", "links.customer") -> the
    # length of the provider's text where it was cut (or the link left out)
    truncated: dict[str, int] = field(default_factory=dict)


def get_path(raw: Any, path: str) -> Any:
    """The value at a dotted path (`"Contact.ContactID"`, `"lines.data.0.amount"`); `"."` is
    the object itself; a missing step gives `_MISSING`."""
    if path == ".":
        return raw
    value = raw
    for step in path.split("."):
        if isinstance(value, dict):
            value = value.get(step, _MISSING)
        elif isinstance(value, list) and step.lstrip("-").isdigit():
            index = int(step)
            value = value[index] if -len(value) <= index < len(value) else _MISSING
        else:
            return _MISSING
        if value is _MISSING:
            return _MISSING
    return value


class _FieldFailure(Exception):
    def __init__(self, field_name: str, reason: str) -> None:
        super().__init__(reason)
        self.field_name = field_name
        self.reason = reason


class Mapper:
    """A validated mapping for one provider and one connection (the Ref's system)."""

    def __init__(self, spec: MappingSpec, connection: str) -> None:
        self.spec = spec
        self.connection = connection

    @property
    def provider(self) -> str:
        return self.spec.provider

    def stream(self, name: str) -> StreamSpec:
        try:
            return self.spec.streams[name]
        except KeyError:
            raise ConfigError(f"the {self.provider} mapping has no stream {name!r}") from None

    def map_page(self, stream: str, raws: list[dict[str, Any]]) -> tuple[list[MappedRecord], list[MappingError]]:
        mapped: list[MappedRecord] = []
        errors: list[MappingError] = []
        for raw in raws:
            try:
                mapped.append(self.map_one(stream, raw))
            except MappingError as exc:
                errors.append(exc)
        return mapped, errors

    def map_one(self, stream: str, raw: dict[str, Any]) -> MappedRecord:
        spec = self.stream(stream)
        context = TransformContext(raw=raw, provider=self.provider)
        remote_id: str | None = None
        try:
            remote_id = self._required_text(spec.id, context, "id")
            if len(remote_id) > TEXT_LIMIT:
                length, remote_id = len(remote_id), shortened(remote_id, 60)
                raise _FieldFailure("id", f"is {length} characters long; an id longer than {TEXT_LIMIT} is refused")
            updated = self._value(spec.updated_at, context, "updated_at") if spec.updated_at else None
            if updated is not None and not isinstance(updated, datetime):
                raise _FieldFailure("updated_at", "must map to a date-time (use a date transform)")
            ref = Ref(
                system=self.connection, object_type=spec.object_type, remote_id=remote_id, remote_updated_at=updated
            )
            context = self._with_currency(spec, context)
            values = self._fields(spec, context)
            deleted = bool(self._value(spec.deleted, context, "deleted")) if spec.deleted else False
            links = {
                role: str(value)
                for role, ref_spec in spec.links.items()
                if (value := self._value(ref_spec, context, f"links.{role}")) not in (None, "")
            }
            hints = {
                name: value
                for name, hint_spec in spec.hints.items()
                if (value := self._value(hint_spec, context, f"hints.{name}")) not in (None, "")
            }
        except _FieldFailure as failure:
            reason = shortened(failure.reason, _REASON_LIMIT)
            raise MappingError(self.provider, spec.object_type, remote_id, failure.field_name, reason) from None
        truncated: dict[str, int] = {}
        values = {name: _bounded(value, name, truncated) for name, value in values.items()}
        hints = {name: _bounded(value, f"hints.{name}", truncated) for name, value in hints.items()}
        for role, linked in list(links.items()):
            if len(linked) > TEXT_LIMIT:
                truncated[f"links.{role}"] = len(linked)
                del links[role]
        model = RECORD_MODELS[spec.record]
        try:
            record = model.model_validate({**values, "refs": [ref]})
        except ValidationError as exc:
            first = exc.errors()[0]
            location = ".".join(str(p) for p in first["loc"]) or _field_in_message(first["msg"])
            reason = shortened(first["msg"], _REASON_LIMIT)
            raise MappingError(self.provider, spec.object_type, remote_id, location, reason) from None
        if truncated:
            logger.warning(
                "%s %s %s: text longer than the connector keeps was cut: %s",
                self.provider,
                spec.object_type,
                remote_id,
                ", ".join(f"{path} ({length} characters)" for path, length in truncated.items()),
            )
        return MappedRecord(
            stream=stream, ref=ref, record=record, links=links, hints=hints, deleted=deleted, truncated=truncated
        )

    # Field evaluation --------------------------------------------------------------------

    def _with_currency(self, spec: StreamSpec, context: TransformContext) -> TransformContext:
        """The context with the record's currency, which every money field and hint uses."""
        currency_ref = spec.currency or spec.fields.get("currency")
        currency = self._value(currency_ref, context, "currency") if currency_ref is not None else None
        if currency is None:
            return context
        return TransformContext(raw=context.raw, provider=context.provider, currency=str(currency).strip().upper())

    def _fields(self, spec: StreamSpec, context: TransformContext) -> dict[str, Any]:
        values: dict[str, Any] = {}
        if context.currency and "currency" in RECORD_MODELS[spec.record].model_fields:
            values["currency"] = context.currency
        for name, ref in spec.fields.items():
            if name == "currency":
                continue
            item_spec = as_field(ref)
            if item_spec.each is not None:
                values[name] = self._items(name, item_spec, context)
                continue
            value = self._value(ref, context, name)
            if value is not None:
                values[name] = value
        return values

    def _items(self, name: str, item_spec: FieldSpec, context: TransformContext) -> list[dict[str, Any]]:
        """A list field (invoice lines) mapped item by item; the record model validates them."""
        items = self._raw(item_spec, context.raw)
        if items is _MISSING or items is None:
            return []
        if not isinstance(items, list):
            raise _FieldFailure(name, "expected a list")
        assert item_spec.each is not None
        result = []
        for index, item in enumerate(items):
            entry = {}
            for item_name, item_ref in item_spec.each.items():
                value = self._value(item_ref, context, f"{name}.{index}.{item_name}", source=item)
                if value is not None:
                    entry[item_name] = value
            result.append(entry)
        return result

    def _raw(self, spec: FieldSpec, source: Any) -> Any:
        if spec.value is not None:
            return copy.deepcopy(spec.value)
        if spec.paths is not None:
            return [None if (v := get_path(source, p)) is _MISSING else v for p in spec.paths]
        assert spec.path is not None
        return get_path(source, spec.path)

    def _value(self, ref: FieldRef | None, context: TransformContext, name: str, source: Any = None) -> Any:
        if ref is None:
            return None
        spec = as_field(ref)
        value = self._raw(spec, context.raw if source is None else source)
        if value is _MISSING or value is None:
            value = copy.deepcopy(spec.default)
            if value is None:
                return None
        if spec.transform is not None:
            try:
                value = TRANSFORMS[spec.transform](value, context)
            except (ValueError, TypeError, ArithmeticError) as exc:
                raise _FieldFailure(name, _first_line(exc)) from None
        if spec.map is not None:
            table = self.spec.status_maps[spec.map]
            key = str(value)
            if key not in table:
                shown = shortened(key, 60)
                raise _FieldFailure(name, f"value {shown!r} is not in status map {spec.map!r} ({', '.join(table)})")
            value = table[key]
        return value

    def _required_text(self, ref: FieldRef, context: TransformContext, name: str) -> str:
        value = self._value(ref, context, name)
        if value in (None, ""):
            raise _FieldFailure(name, "is missing")
        return str(value)


def text_limit(path: str) -> int:
    """How many characters of provider text the field at `path` keeps (by its last name:
    `lines.0.description` is free text)."""
    name = next((part for part in reversed(path.split(".")) if not part.isdigit()), path)
    return FREE_TEXT_LIMIT if name in FREE_TEXT_FIELDS else TEXT_LIMIT


def shortened(text: str, limit: int = TEXT_LIMIT) -> str:
    """`text` cut to `limit` characters, the last one an ellipsis when anything was cut."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def distinctly_shortened(text: str, limit: int = TEXT_LIMIT) -> str:
    """`text` cut to `limit` characters, ending in an ellipsis and a digest of the whole text,
    so that two long values that differ only after the cut stay different: a cut invoice
    number, e-mail or reference must never make two records look the same to linking or
    reconciliation."""
    if len(text) <= limit:
        return text
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]
    return text[: limit - len(digest) - 1] + "…" + digest


def _bounded(value: Any, path: str, truncated: dict[str, int]) -> Any:
    """`value` with every string in it cut to its field's limit; `truncated` notes each cut.
    Identifiers, numbers, names and references keep a digest of the whole value; free text
    (read by people, not compared) is cut plainly."""
    if isinstance(value, str):
        limit = text_limit(path)
        if len(value) > limit:
            truncated[path] = len(value)
            return shortened(value, limit) if limit == FREE_TEXT_LIMIT else distinctly_shortened(value, limit)
        return value
    if isinstance(value, list):
        return [_bounded(item, f"{path}.{index}", truncated) for index, item in enumerate(value)]
    if isinstance(value, dict):
        return {key: _bounded(item, f"{path}.{key}", truncated) for key, item in value.items()}
    return value


def _first_line(exc: BaseException) -> str:
    text = str(exc)
    if isinstance(exc, ValidationError):
        text = exc.errors()[0]["msg"]
    return text.splitlines()[0] if text else type(exc).__name__


def _field_in_message(message: str) -> str:
    """Model-level checks name their field first ("total: ... is not subtotal + tax")."""
    head = message.removeprefix("Value error, ").split(":", 1)[0]
    return head if head and " " not in head else "record"


# Loading --------------------------------------------------------------------------------


def deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def read_mapping_resource(location: str) -> dict[str, Any]:
    """A mapping file named as `package:file.toml` (e.g. `mappings:stripe.toml`)."""
    package, _, name = location.partition(":")
    if not package or not name:
        raise ConfigError(f"mapping location {location!r} must look like 'package:file.toml'")
    try:
        text = resources.files(package).joinpath(name).read_text(encoding="utf-8")
    except (ModuleNotFoundError, FileNotFoundError) as exc:
        raise ConfigError(f"mapping file {location} not found: {exc}") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"mapping file {location} is not valid TOML: {exc}") from None


def build_spec(data: dict[str, Any], where: str) -> MappingSpec:
    for module in data.get("imports", []) if isinstance(data.get("imports"), list) else []:
        try:
            importlib.import_module(str(module))
        except ImportError as exc:
            raise ConfigError(f"imports: cannot import {module!r}: {exc}", where=where) from None
    try:
        return MappingSpec.model_validate(data)
    except ValidationError as exc:
        errors = exc.errors()
        # A field may be a path string or a table: the table branch's error is the telling one.
        first = next((e for e in errors if "str" not in e["loc"]), errors[0])
        location = ".".join(str(p) for p in first["loc"] if p not in ("str", "FieldSpec"))
        message = "unknown key" if first["type"] == "extra_forbidden" else first["msg"].removeprefix("Value error, ")
        raise ConfigError(f"{location}: {message}" if location else message, where=where) from None


def load_mapping(location: str, *, connection: str, overrides: dict[str, Any] | None = None) -> Mapper:
    """The effective mapping of one connection: the provider's file with the connection's
    `mapping` overrides from connector.toml merged over it, validated as a whole."""
    data = read_mapping_resource(location)
    where = location
    if overrides:
        data = deep_merge(data, overrides)
        where = f"connections.{connection}.mapping (over {location})"
    return Mapper(build_spec(data, where), connection)
