"""The databases the tests run on: a database of their own on the machine's PostgreSQL and
MariaDB, SQLite files, and a private PostgreSQL that a test may stop and start again."""

from __future__ import annotations

import contextlib
import os
import pwd
import secrets
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

from opa.testing import LOCALHOST, free_port, skip_or_fail, wait_for

POSTGRES = os.environ.get("OPA_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
MARIADB = os.environ.get("OPA_TEST_MARIADB_URL", "mysql://root@127.0.0.1:3306/test")
"""The machine's servers (trust auth; root with an empty password), database ``test``."""

PG_BINARIES = sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)
START_TIMEOUT = 30.0
PORT_ATTEMPTS = 5


def with_database(url: str, database: str, dbapi: str | None = None) -> str:
    """*url* pointing at *database*, with ``+dbapi`` when given."""
    scheme, rest = url.split("://", 1)
    family = scheme.split("+", 1)[0]
    server = rest.rsplit("/", 1)[0]
    return f"{family}{'+' + dbapi if dbapi else ''}://{server}/{database}"


@contextlib.contextmanager
def own_database(url: str) -> Iterator[str]:
    """A new database on the server of *url* for the block (dropped after), as a URL.

    Tests create tables in it; the machine's ``test`` database is never written to.
    """
    from sqlalchemy import create_engine

    sync = with_database(url, url.rsplit("/", 1)[1], "psycopg" if "postgres" in url else "pymysql")
    name = f"opa_sql_{secrets.token_hex(4)}"
    admin = create_engine(sync, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 3})
    try:
        with admin.connect() as connection:
            connection.exec_driver_sql(f"CREATE DATABASE {name}")
    except Exception as error:
        admin.dispose()
        skip_or_fail(f"no database server at {url}: {type(error).__name__}: {error}")
    try:
        yield with_database(url, name)
    finally:
        with admin.connect() as connection:
            if "postgres" in url:
                connection.exec_driver_sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
            else:
                connection.exec_driver_sql(f"DROP DATABASE IF EXISTS {name}")
        admin.dispose()


class PostgresServer:
    """A private PostgreSQL (the machine's initdb and postgres), trust auth on 127.0.0.1.

    ``stop()`` then ``start()`` brings it back on the same port, as a real outage would. As
    root it runs as the ``postgres`` user, since PostgreSQL refuses to run as root.
    """

    def __init__(self) -> None:
        if not PG_BINARIES:
            skip_or_fail("no PostgreSQL binaries under /usr/lib/postgresql/*/bin")
        self.bin = PG_BINARIES[0]
        self.port = 0
        self.folder = Path(tempfile.mkdtemp(prefix="opa-pg-"))
        self.data = self.folder / "data"
        self.log = self.folder / "postgres.log"
        self._process: subprocess.Popen[bytes] | None = None
        self._user = "postgres" if os.geteuid() == 0 else None
        if self._user is not None:
            entry = pwd.getpwnam(self._user)
            os.chown(self.folder, entry.pw_uid, entry.pw_gid)
        self._run([str(self.bin / "initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres"])

    def _as_user(self, command: list[str]) -> list[str]:
        return ["runuser", "-u", self._user, "--", *command] if self._user else command

    def _run(self, command: list[str]) -> None:
        done = subprocess.run(self._as_user(command), capture_output=True, text=True)
        if done.returncode != 0:
            raise AssertionError(f"{' '.join(command)} failed:\n{done.stdout}\n{done.stderr}")

    @property
    def url(self) -> str:
        return f"postgresql://postgres@{LOCALHOST}:{self.port}/postgres"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self) -> None:
        """Start the server (again) and wait until it accepts connections."""
        if self.running:
            return
        if self.port:
            self._start_on(self.port)
            return
        for _ in range(PORT_ATTEMPTS):
            port = free_port()
            if self._start_on(port, may_fail=True):
                self.port = port
                return
        raise AssertionError(
            f"postgres found no free port in {PORT_ATTEMPTS} tries:\n{self._tail()}"
        )

    def _start_on(self, port: int, may_fail: bool = False) -> bool:
        command = [str(self.bin / "postgres"), "-D", str(self.data), "-p", str(port)]
        command += [
            "-c",
            f"listen_addresses={LOCALHOST}",
            "-c",
            f"unix_socket_directories={self.folder}",
        ]
        command += ["-c", "fsync=off", "-c", "max_connections=50"]
        with self.log.open("ab") as output:
            self._process = subprocess.Popen(
                self._as_user(command),
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        process = self._process

        def ready() -> bool:
            if process.poll() is not None:
                return True
            done = subprocess.run(
                [str(self.bin / "pg_isready"), "-h", LOCALHOST, "-p", str(port), "-t", "1"],
                capture_output=True,
            )
            return done.returncode == 0

        wait_for(ready, START_TIMEOUT, f"postgres on port {port}")
        if process.poll() is None:
            return True
        if may_fail and "could not bind" in self._tail():
            return False
        raise AssertionError(f"postgres exited with {process.returncode}:\n{self._tail()}")

    def _tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:]

    def stop(self) -> None:
        """Stop the server at once (immediate shutdown), as a crash or a restart would."""
        if self._process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            # SIGQUIT: immediate shutdown, every connection cut.
            os.killpg(self._process.pid, 3)
        try:
            self._process.wait(START_TIMEOUT)
        except subprocess.TimeoutExpired:
            os.killpg(self._process.pid, 9)
            self._process.wait(START_TIMEOUT)
        self._process = None

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.folder, ignore_errors=True)
