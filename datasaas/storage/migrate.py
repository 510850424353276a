"""Apply and inspect Alembic migrations, on the project's own async engine."""

from __future__ import annotations

import asyncio
import sys
import tempfile
from pathlib import Path
from typing import Any

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from sqlalchemy.engine import Connection

from datasaas.storage.engine import Database
from datasaas.storage.models import metadata

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def alembic_config(url: str = "") -> Config:
    """Return an Alembic config pointing at the bundled migrations (no alembic.ini needed)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


async def upgrade(database: Database, revision: str = "head") -> None:
    """Apply migrations up to ``revision`` (default: all pending)."""

    def _upgrade(connection: Connection) -> None:
        config = alembic_config(database.url)
        config.attributes["connection"] = connection
        command.upgrade(config, revision)

    async with database.engine.begin() as connection:
        await connection.run_sync(_upgrade)


async def schema_drift(database: Database) -> list[Any]:
    """Return the differences Alembic autogenerate finds between the models and the database."""

    def _compare(connection: Connection) -> list[Any]:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        return list(compare_metadata(context, metadata))

    async with database.engine.connect() as connection:
        return await connection.run_sync(_compare)


async def autogenerate(message: str) -> None:
    """Write a new revision with what the models add over the current head (``make migration``)."""
    with tempfile.TemporaryDirectory() as scratch:
        database = Database(f"sqlite+aiosqlite:///{Path(scratch) / 'head.db'}")
        try:
            await upgrade(database)

            def _revision(connection: Connection) -> None:
                config = alembic_config(database.url)
                config.attributes["connection"] = connection
                number = len(list((MIGRATIONS_DIR / "versions").glob("[0-9]*.py"))) + 1
                command.revision(config, message=message, autogenerate=True, rev_id=f"{number:04d}")

            async with database.engine.begin() as connection:
                await connection.run_sync(_revision)
        finally:
            await database.dispose()


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] != "revision" or not sys.argv[2].strip():
        sys.exit('usage: python -m datasaas.storage.migrate revision "message"')
    asyncio.run(autogenerate(sys.argv[2]))
