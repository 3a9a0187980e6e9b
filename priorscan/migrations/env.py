"""Alembic environment: runs on a connection handed in by :func:`priorscan.db.migrate` or opens its own."""

from alembic import context
from sqlalchemy import engine_from_config, pool

from priorscan.db import load_table_modules

config = context.config
target_metadata = load_table_modules()


def _run(connection) -> None:  # type: ignore[no-untyped-def]
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


connection = config.attributes.get("connection")
if connection is not None:
    _run(connection)
else:
    engine = engine_from_config(config.get_section(config.config_ini_section) or {}, prefix="sqlalchemy.",
                                poolclass=pool.NullPool)
    with engine.connect() as conn:
        _run(conn)
        conn.commit()
