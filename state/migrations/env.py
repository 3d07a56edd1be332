"""Alembic environment for the state store, run only through `state.migrate`.

`state.migrate` builds the alembic `Config` in code and hands over an open connection in
`config.attributes["connection"]`, so no alembic.ini is needed and an installed wheel can
upgrade its database. The whole upgrade is one transaction (SQLite included: `state.db`
makes pysqlite emit a real BEGIN), so a failed upgrade leaves the database as it was.
"""

from __future__ import annotations

from alembic import context

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations through state.migrate.upgrade(), not the alembic CLI")

context.configure(
    connection=connection,
    target_metadata=None,
    render_as_batch=connection.dialect.name == "sqlite",  # SQLite cannot ALTER most things
    transactional_ddl=True,
)
with context.begin_transaction():
    context.run_migrations()
