"""The migration step: create the example's tables in the database at URL (idempotent).

    python -m books.migrate [URL]      # from examples/sql; URL defaults to sqlite:///books.db

It goes through the ``sqlalchemy`` driver itself, so the URL means what it means in the
component's settings (``postgresql://`` is psycopg, ``mysql://`` PyMySQL) and the
password in it is never printed.
"""

from __future__ import annotations

import sys

from sqlalchemy import inspect

from books.models import Base
from opa import mask_secrets
from opa_driver_sqlalchemy import SQLAlchemyDriver, SQLOptions

DEFAULT_URL = "sqlite:///books.db"


def migrate(url: str) -> list[str]:
    """Create the tables that are missing at *url*; the names of the tables created."""
    driver = SQLAlchemyDriver("migrate", SQLOptions(URL=url))
    driver.connect()
    try:
        with driver.instance.begin() as connection:
            existing = set(inspect(connection).get_table_names())
            Base.metadata.create_all(connection)
    finally:
        driver.disconnect()
    return sorted(set(Base.metadata.tables) - existing)


def main(argv: list[str]) -> int:
    url = argv[0] if argv else DEFAULT_URL
    created = migrate(url)
    print(
        f"{mask_secrets(url)}: created {', '.join(created) if created else 'nothing, up to date'}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
