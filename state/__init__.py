"""Persistence of the connector's state: canonical records, refs, cursors, outbox, audit log.

SQLite by default, PostgreSQL when several workers share the load; the schema is versioned
with alembic migrations shipped in this package. `state` never calls the network.
"""

from state.db import DEFAULT_URL, database_url_for, make_engine, redact_url
from state.migrate import check_schema, current_revision, head_revision, upgrade
from state.store import Store, open_store
from state.tokens import StoredTokens

__all__ = [
    "DEFAULT_URL",
    "Store",
    "StoredTokens",
    "check_schema",
    "current_revision",
    "database_url_for",
    "head_revision",
    "make_engine",
    "open_store",
    "redact_url",
    "upgrade",
]
