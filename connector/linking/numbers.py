"""Invoice numbers as the systems write them, made comparable."""

from __future__ import annotations

import re
from typing import Any


def normalise_number(value: Any) -> str | None:
    """`INV-0042`, `inv 0042` and `INV0042` are one number; leading zeros of the digits are not
    significant only when the prefixes agree, so they are kept in the key."""
    if value in (None, ""):
        return None
    text = re.sub(r"[\s_\-./#]", "", str(value)).upper()
    return text or None
