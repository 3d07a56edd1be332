"""Persistence of the connector's state: canonical records, refs, cursors, outbox, audit log.

SQLite by default, PostgreSQL when several workers share the load; the schema is versioned
with alembic migrations shipped in this package. `state` never calls the network.
"""

from connector.state.db import DEFAULT_URL, database_url_for, make_engine, redact_url
from connector.state.migrate import check_schema, current_revision, head_revision, upgrade
from connector.state.store import Store, open_store
from connector.state.tokens import StoredTokens

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
