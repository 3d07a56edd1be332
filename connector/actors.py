"""Who decides: the user a decision, a cancel or a collections change is recorded under."""

from __future__ import annotations

import getpass


def current_user(given: str | None) -> str:
    if given:
        return given
    try:
        return getpass.getuser()
    except Exception:  # no login name in a container: say so rather than guess
        return "unknown-user"
