"""JSON request bodies with exact money: a Decimal is written as a number with exactly its
digits (httpx's encoder cannot write a Decimal at all, and a float would round it)."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any


def dumps_exact(value: Any) -> str:
    """Compact JSON in which a Decimal is a number with exactly its digits; floats refused."""
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise ValueError(f"not a finite amount: {value}")
        return format(value, "f")
    if isinstance(value, float):
        raise TypeError("floats are never sent to a provider; use Decimal")
    if isinstance(value, dict):
        items = (f"{json.dumps(str(key))}:{dumps_exact(item)}" for key, item in value.items())
        return "{" + ",".join(items) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(dumps_exact(item) for item in value) + "]"
    return json.dumps(value, ensure_ascii=False)
