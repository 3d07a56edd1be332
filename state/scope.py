"""Which company a transaction works for.

One deployment may keep the books of several companies (legal entities, or client companies)
in one database. Every row of a book carries its company, and the keys carry it too (see
`state.tables`); a session is bound to one company when the store opens it (`Store.session`),
and every reader and writer of a book takes the company from its session here. So no stage
passes a company around, and none can read or write another company's rows by forgetting a
filter: a session that is not bound refuses to touch a book at all.
"""

from __future__ import annotations

import re

from sqlalchemy.orm import Session

from connector.errors import ConfigError, StateError

DEFAULT_COMPANY = "default"
"""The company of a configuration that names none, and of every row stored before companies."""

RESERVED = frozenset({"all"})  # `--company all`: reports side by side

_INFO_KEY = "connector.company"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


def check_company_name(name: object, where: str | None = None) -> str:
    """A company name as written in the config or on the command line: letters, digits, `_`,
    `.` and `-`, starting with a letter or digit, at most 64 characters."""
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ConfigError(
            "a company name is 1-64 letters, digits, '_', '.' or '-', starting with a letter or digit",
            where=where,
        )
    if name.lower() in RESERVED:
        raise ConfigError(f"{name!r} cannot name a company: `--company all` means every company", where=where)
    return name


def bind(session: Session, company: str) -> Session:
    """Make `session` work for `company` (once: a session never changes company)."""
    bound = session.info.get(_INFO_KEY)
    if bound is not None and bound != company:
        raise StateError(f"this transaction works for company {bound!r}, not {company!r}")
    session.info[_INFO_KEY] = company
    return session


def company_of(session: Session) -> str:
    """The company `session` works for; a session bound to none is refused (a bug, not data)."""
    company = session.info.get(_INFO_KEY)
    if company is None:
        raise StateError("this transaction is not bound to a company (open it with Store.session)")
    return str(company)
