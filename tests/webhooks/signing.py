"""Webhook requests as the providers sign them, for the listener tests."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from typing import Any


def stripe_signed(event: dict[str, Any], secret: str) -> tuple[bytes, dict[str, str]]:
    """`event`'s body and the headers Stripe sends with it (`Stripe-Signature`, signed now)."""
    body = json.dumps(event).encode()
    t = int(time.time())
    v1 = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return body, {"Stripe-Signature": f"t={t},v1={v1}", "Content-Type": "application/json"}
