"""A private PostgreSQL for tests that stop and restart a database server.

The machine's PostgreSQL is shared: a test never stops it. :class:`PostgresServer` runs one
of its own from the machine's server binaries (``initdb``, ``postgres``) in a temporary
folder. Only the standard library is used: opa-core imports no SQL library, and readiness
is read from the server's own ``postmaster.pid``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path

from opa.testing._ports import LOCALHOST, PortTaken, ServiceUnavailable, on_free_port
from opa.testing._services import wait_until_ready

POSTGRES_USER = "postgres"
"""The superuser of the new cluster, and the system user the server runs as under root."""
STOP_SECONDS = 10.0


def postgres_binaries() -> Path:
    """The folder of the newest PostgreSQL server binaries on the machine.

    Debian and Ubuntu keep them under ``/usr/lib/postgresql/<version>/bin``, off PATH;
    elsewhere ``initdb`` on PATH says where they are.
    """
    versions = sorted(
        Path("/usr/lib/postgresql").glob("*/bin"),
        key=lambda folder: int(v) if (v := folder.parent.name).isdigit() else 0,
        reverse=True,
    )
    for folder in versions:
        if (folder / "initdb").is_file():
            return folder
    on_path = shutil.which("initdb")
    if on_path is not None:
        return Path(on_path).parent
    raise ServiceUnavailable(
        "no PostgreSQL server binaries: install PostgreSQL (initdb and postgres under "
        "/usr/lib/postgresql/<version>/bin, or on PATH)"
    )


class PostgresServer:
    """A private PostgreSQL on 127.0.0.1, trust authentication, superuser ``postgres``.

    The cluster is made (``initdb``) at the first ``start()``, in a temporary folder that
    also holds its unix socket and its log. Without a *port* it takes a free one, and
    another if that one is taken meanwhile. ``stop()`` is an immediate shutdown that cuts
    every connection, as a crash would; ``start()`` then brings it back on the same port
    with the same data. PostgreSQL refuses to run as root, so under root every command runs
    as the ``postgres`` system user (through ``runuser``), which must exist.
    """

    def __init__(self, port: int | None = None) -> None:
        self.port = port or 0
        self.bin = postgres_binaries()
        # Under /tmp: the unix socket's path must stay short, whatever TMPDIR says.
        self.folder = Path(tempfile.mkdtemp(prefix="opa-pg-", dir="/tmp"))
        self.data = self.folder / "data"
        self.log = self.folder / "postgres.log"
        self._process: subprocess.Popen[bytes] | None = None
        self._user = POSTGRES_USER if os.geteuid() == 0 else None
        if self._user is not None:
            shutil.chown(self.folder, self._user, self._user)

    @property
    def url(self) -> str:
        """``postgresql://postgres@127.0.0.1:<port>/postgres`` (no ``+driver``; the port is
        known once it has started)."""
        return f"postgresql://{POSTGRES_USER}@{LOCALHOST}:{self.port}/postgres"

    @property
    def running(self) -> bool:
        """True while the server process is alive."""
        return self._process is not None and self._process.poll() is None

    def start(self) -> None:
        """Start the server (again) and wait until it accepts connections."""
        if self.running:
            return
        if not self.data.exists():
            self._initdb()
        if self.port:
            self._start_on(self.port)
        else:
            self.port = on_free_port(self._start_on, "postgres")

    def stop(self) -> None:
        """Stop the server at once (SIGQUIT, immediate shutdown); the port then refuses
        connections until ``start()``."""
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGQUIT)
        try:
            process.wait(STOP_SECONDS)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(STOP_SECONDS)

    def close(self) -> None:
        """Stop the server and remove its folder, data included."""
        self.stop()
        shutil.rmtree(self.folder, ignore_errors=True)

    def _as_user(self, command: list[str]) -> list[str]:
        return ["runuser", "-u", self._user, "--", *command] if self._user else command

    def _initdb(self) -> None:
        command = [str(self.bin / "initdb"), "-D", str(self.data), "-A", "trust"]
        command += ["-U", POSTGRES_USER]
        done = subprocess.run(self._as_user(command), capture_output=True, text=True)
        if done.returncode != 0:
            raise ServiceUnavailable(f"initdb failed: {done.stdout}{done.stderr}".strip())

    def _start_on(self, port: int) -> int:
        command = [str(self.bin / "postgres"), "-D", str(self.data), "-p", str(port)]
        settings = {
            "listen_addresses": LOCALHOST,
            "unix_socket_directories": str(self.folder),
            "fsync": "off",  # a test's data is thrown away with it
            "max_connections": "50",
        }
        for name, value in settings.items():
            command += ["-c", f"{name}={value}"]
        self.log.unlink(missing_ok=True)  # a bind failure is read from it
        with self.log.open("ab") as output:
            # A session of its own, so stop() signals the server and not the test's group.
            self._process = subprocess.Popen(
                self._as_user(command),
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        process = self._process

        def ready() -> bool:
            # The server's own word, not whoever answers on the port: postmaster.pid names
            # its port on line 4 and says "ready" on line 8 once it accepts connections.
            try:
                lines = (self.data / "postmaster.pid").read_text().splitlines()
            except OSError:
                return False
            listening = len(lines) >= 8 and lines[3].strip() == str(port)
            return listening and lines[7].strip() == "ready" and process.poll() is None

        try:
            wait_until_ready(ready, self._process, f"postgres on port {port}", self.log)
        except PortTaken:
            self._process = None
            raise
        except ServiceUnavailable:
            self.stop()  # the whole process group: runuser's child too
            raise
        return port
