"""Building pydantic models without validating them again, for values already checked.

Two callers: the matcher checks every value it outputs itself (`Book.allocate` is the one place
allocations are made and it raises on any breach), and the state store reads back records it
validated when they were written (`state.convert`: validate at the edges, mapping and
decisions). At a million records pydantic's validation, or even `model_construct`, which is
pure Python, is most of the cost. A builder sets the instance's `__dict__` and bookkeeping
exactly as `model_construct` would, from values given in the model's field order; a model the
builder cannot build that way (a root model, private attributes, a post-init hook, extra fields
allowed) falls back to `model_construct`. `tests/reconcile/test_reconcile_build.py` and
`tests/state/test_state_records.py` check built models equal validated ones.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any, TypeVar

from pydantic import BaseModel

M = TypeVar("M", bound=BaseModel)

_new = object.__new__
_set = object.__setattr__
_IMMUTABLE = (type(None), bool, int, str, Decimal, tuple, frozenset)


def builder(cls: type[M], *names: str) -> Callable[..., M]:
    """A function building `cls` from positional values for `names` (in that order); every
    other field takes its default. The values must be valid: nothing is checked."""
    fields = cls.model_fields
    unknown = [name for name in names if name not in fields]
    if unknown:
        raise TypeError(f"{cls.__name__} has no field {unknown}")
    missing = [name for name, field in fields.items() if name not in names and field.is_required()]
    if missing:
        raise TypeError(f"{cls.__name__} needs {missing}")
    plain = (
        not cls.__pydantic_root_model__
        and not cls.__private_attributes__
        and not cls.__pydantic_post_init__
        and cls.model_config.get("extra") != "allow"
        and all(field.alias in (None, name) for name, field in fields.items())
        and all(field.default_factory is None for name, field in fields.items() if name not in names)
    )

    def slow(*values: Any) -> M:
        return cls.model_construct(**dict(zip(names, values, strict=True)))

    if not plain:
        return slow

    # Defaults are shared, so only immutable ones (pydantic would copy a mutable one).
    template = {name: field.default for name, field in fields.items() if name not in names}
    if not all(isinstance(value, _IMMUTABLE) for value in template.values()):
        return slow
    # The function's source, as `dataclasses` and `namedtuple` make theirs: one dict display
    # in the model's field order, no loop.
    args = [f"_{index}" for index in range(len(names))]
    value = dict(zip(names, args, strict=True))
    entries = ", ".join(
        f"{name!r}: {value[name]}" if name in value else f"{name!r}: _default_{name}" for name in fields
    )
    given = ", ".join(repr(name) for name in names)
    source = (
        f"def build({', '.join(args)}):\n"
        f"    model = _new(cls)\n"
        f"    _set(model, '__dict__', {{{entries}}})\n"
        f"    _set(model, '__pydantic_fields_set__', {{{given}}})\n"
        f"    _set(model, '__pydantic_extra__', None)\n"
        f"    _set(model, '__pydantic_private__', None)\n"
        f"    return model\n"
    )
    scope: dict[str, Any] = {"_new": _new, "_set": _set, "cls": cls}
    scope.update({f"_default_{name}": default for name, default in template.items()})
    exec(source, scope)  # noqa: S102 - names are the model's own field names
    build: Callable[..., M] = scope["build"]
    build.__qualname__ = f"build_{cls.__name__}"
    return build
