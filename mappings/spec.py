"""The shape of a mapping file, validated before any record is mapped.

A mapping file (TOML) says, per stream of a provider, which canonical record it becomes and
where each canonical field comes from:

    provider = "stripe"
    imports = ["connector.mappings.stripe_transforms"]   # optional: modules registering more transforms

    [streams.invoices]
    record = "invoice"                  # customer, contact, invoice, payment, credit_note, ...
    object_type = "invoice"             # the Ref object type
    id = "id"
    currency = { path = "currency", transform = "currency" }
    updated_at = { path = "created", transform = "epoch_seconds" }

    [streams.invoices.fields]
    number = "number"
    total = { path = "total", transform = "stripe_minor_units" }
    status = { path = "status", map = "invoice_status" }
    lines = { path = "lines.data", each = { amount = { path = "amount", transform = "stripe_minor_units" } } }

    [streams.invoices.links]            # related objects in the same system, by their remote id
    customer = "customer"

    [streams.invoices.hints]            # facts for cross-system linking (not stored as fields)
    ledger_invoice_id = "metadata.xero_invoice_id"

    [status_maps.invoice_status]
    draft = "draft"

A field is either a dotted path (`"Contact.ContactID"`, `"lines.data.0.amount"`) or a table
with `path` (or `paths`, giving a list), `value` (a constant), `transform` (a named function
from `connector.mappings.transforms`), `map` (a status map) and `default`. Money transforms take the
record's currency: the stream's `currency` (or a `currency` field), mapped first. Unknown keys,
unknown canonical fields, unknown transforms and status-map values that the canonical model does not allow are refused
when the file is loaded, not in the middle of a sync.
"""

from __future__ import annotations

from typing import Any, Literal, Union, get_args

from pydantic import BaseModel, ConfigDict, Field, model_validator

from connector.mappings.transforms import TRANSFORMS
from connector.model import (
    BalanceTransaction,
    Contact,
    CreditNote,
    Customer,
    Invoice,
    InvoiceLine,
    ObjectType,
    Payment,
    Payout,
    Refund,
)

RecordName = Literal[
    "customer", "contact", "invoice", "payment", "credit_note", "refund", "payout", "balance_transaction"
]

RECORD_MODELS: dict[str, type[BaseModel]] = {
    "customer": Customer,
    "contact": Contact,
    "invoice": Invoice,
    "payment": Payment,
    "credit_note": CreditNote,
    "refund": Refund,
    "payout": Payout,
    "balance_transaction": BalanceTransaction,
}

# Nested lists that a field may map item by item, and the model of each item.
ITEM_MODELS: dict[tuple[str, str], type[BaseModel]] = {("invoice", "lines"): InvoiceLine}

# Fields that the mapper fills itself.
RESERVED_FIELDS = {"id", "refs", "customer_id"}


class FieldSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    path: str | None = None
    paths: list[str] | None = None
    value: Any = None
    transform: str | None = None
    map: str | None = None
    default: Any = None
    each: dict[str, FieldRef] | None = None

    @model_validator(mode="after")
    def _one_source(self) -> FieldSpec:
        sources = [self.path is not None, self.paths is not None, self.value is not None]
        if sum(sources) != 1:
            raise ValueError("give exactly one of `path`, `paths` or `value`")
        if self.transform is not None and self.transform not in TRANSFORMS:
            raise ValueError(f"unknown transform {self.transform!r} (known: {', '.join(sorted(TRANSFORMS))})")
        return self


FieldRef = Union[str, FieldSpec]  # noqa: UP007 - pydantic needs the forward-declared union
FieldSpec.model_rebuild()


def as_field(ref: FieldRef) -> FieldSpec:
    return FieldSpec(path=ref) if isinstance(ref, str) else ref


class StreamSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    record: RecordName
    object_type: ObjectType
    # "refs": keep this system's view only (in its refs), without a canonical record of its
    # own: for a stream that repeats money another stream already carries (Stripe's payment
    # intents beside their charges).
    store: Literal["canonical", "refs"] = "canonical"
    id: FieldRef
    currency: FieldRef | None = None  # the currency of every money field of the record
    updated_at: FieldRef | None = None
    deleted: FieldRef | None = None
    fields: dict[str, FieldRef] = Field(default_factory=dict)
    links: dict[str, FieldRef] = Field(default_factory=dict)
    hints: dict[str, FieldRef] = Field(default_factory=dict)


class MappingSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    provider: str
    imports: list[str] = Field(default_factory=list)  # modules that register transforms
    streams: dict[str, StreamSpec]
    status_maps: dict[str, dict[str, str]] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _fields_exist(self) -> MappingSpec:
        for stream_name, stream in self.streams.items():
            model = RECORD_MODELS[stream.record]
            for field_name, ref in stream.fields.items():
                where = f"streams.{stream_name}.fields.{field_name}"
                if field_name in RESERVED_FIELDS or field_name not in model.model_fields:
                    raise ValueError(f"{where}: {stream.record} has no mappable field {field_name!r}")
                spec = as_field(ref)
                if spec.map is not None:
                    self._check_map(where, spec.map, model, field_name)
                if spec.each is not None:
                    item_model = ITEM_MODELS.get((stream.record, field_name))
                    if item_model is None:
                        raise ValueError(f"{where}: `each` is only for list fields such as invoice lines")
                    for item_field in spec.each:
                        if item_field not in item_model.model_fields:
                            raise ValueError(f"{where}.each: no field {item_field!r}")
            for group in ("links", "hints"):
                for key, ref in getattr(stream, group).items():
                    spec = as_field(ref)
                    if spec.map is not None and spec.map not in self.status_maps:
                        raise ValueError(f"streams.{stream_name}.{group}.{key}: unknown map {spec.map!r}")
        return self

    def _check_map(self, where: str, map_name: str, model: type[BaseModel], field_name: str) -> None:
        if map_name not in self.status_maps:
            raise ValueError(f"{where}: unknown status map {map_name!r}")
        allowed = _literal_values(model.model_fields[field_name].annotation)
        if allowed:
            for remote, canonical in self.status_maps[map_name].items():
                if canonical not in allowed:
                    raise ValueError(
                        f"status_maps.{map_name}.{remote}: {canonical!r} is not one of {', '.join(allowed)}"
                    )


def _literal_values(annotation: Any) -> tuple[str, ...]:
    args = get_args(annotation)
    if args and all(isinstance(a, str) for a in args):
        return args
    return ()
