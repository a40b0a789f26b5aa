"""DuckDB storage: connections, migrations and the reads/writes jobs use.

Only ``jobs/`` call the writing functions; the dashboard opens read-only
connections through :func:`connect` with ``read_only=True``.
"""
from retcore.storage.db import DEFAULT_DB, connect, resolve_db_path, transaction
from retcore.storage.migrations import MIGRATIONS, SCHEMA_VERSION, current_version, migrate

__all__ = [
    "DEFAULT_DB",
    "MIGRATIONS",
    "SCHEMA_VERSION",
    "connect",
    "current_version",
    "migrate",
    "resolve_db_path",
    "transaction",
]
