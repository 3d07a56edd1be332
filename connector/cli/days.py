"""Days typed on the command line: `YYYY-MM-DD` in ASCII digits, within the years the reports
can count back and forward from (a DSO window, a statement's month), else a usage error; and
moments as every command prints them (`local_time`)."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime

from connector.errors import UsageError

DAY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", re.ASCII)
FIRST_DAY = date(1900, 1, 1)
LAST_DAY = date(9998, 12, 31)


def parse_day(value: str | None, option: str, default: date | None = None) -> date:
    """`value` as a date, `default` (today when None) when not given; one-line usage error
    naming `option` when it is not a real YYYY-MM-DD day between 1900 and 9998."""
    if value is None:
        return default or date.today()
    text = value.strip()
    if not DAY.fullmatch(text):
        raise UsageError(f"{option}: {value!r} is not a date (use YYYY-MM-DD)")
    try:
        day = date.fromisoformat(text)
    except ValueError:
        raise UsageError(f"{option}: {value!r} is not a date (use YYYY-MM-DD)") from None
    if not FIRST_DAY <= day <= LAST_DAY:
        raise UsageError(f"{option}: {value} is out of range ({FIRST_DAY} to {LAST_DAY})")
    return day


def start_of(day: date) -> datetime:
    """Midnight UTC at the start of `day`."""
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def local_time(moment: datetime) -> str:
    """A moment as this machine's local time, to the second (how every command prints one)."""
    return moment.astimezone().strftime("%Y-%m-%d %H:%M:%S")
