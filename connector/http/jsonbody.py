"""JSON request bodies with exact money: a Decimal is written as a number with exactly its
digits (httpx's encoder cannot write a Decimal at all, and a float would round it)."""

from __future__ import annotations

import json
import re
from decimal import Decimal
from typing import Any

# Decimals travel through the C encoder as marked strings, then lose their quotes: the C
# encoder does the work (several times faster than a Python walk writing every value).
_MARK = "\u0001\u0002decimal\u0003"
_MARKED = re.compile(r'"\\u0001\\u0002decimal\\u0003(-?[0-9.]+(?:E[+-]?[0-9]+)?)"')


def _mark(value: Any) -> str:
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise ValueError(f"not a finite amount: {value}")
        return _MARK + format(value, "f")
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def _refuse_floats(value: Any) -> None:
    if isinstance(value, float):
        raise TypeError("floats are never sent to a provider; use Decimal")
    if isinstance(value, dict):
        for item in value.values():
            _refuse_floats(item)
    elif isinstance(value, (list, tuple)):
        for item in value:
            _refuse_floats(item)


def dumps_exact(value: Any) -> str:
    """Compact JSON in which a Decimal is a number with exactly its digits; floats refused."""
    _refuse_floats(value)
    text = json.dumps(value, default=_mark, separators=(",", ":"), ensure_ascii=False)
    return _MARKED.sub(r"\1", text)
