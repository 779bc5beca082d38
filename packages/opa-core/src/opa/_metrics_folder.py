"""The folder of prometheus-client's multiprocess mode, for metrics of several processes.

When ``PROMETHEUS_MULTIPROC_DIR`` names a folder as prometheus-client is imported, every
metric writes its values to a file of its process there, and a scrape adds up the
folder. ``opa run --workers N`` and ``opa worker`` (a Celery pool) make a private folder
for their processes unless the variable names one already, which is then checked and
kept. Each process that ends is marked dead, so gauges of the ``live*`` modes forget it.
prometheus-client is imported on use only: the variable must be set before that import.

A private folder is locked (``flock``) by the process that made it for as long as it lives;
the next one made removes those whose lock nobody holds, left by a process that was killed
before it could remove its own. A lock, not a process id, because the temporary folder may
be shared by processes another pid namespace hides (containers).
"""

from __future__ import annotations

import fcntl
import os
import shutil
import stat
import tempfile
from pathlib import Path

from opa._errors import ConfigError

FOLDER_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"
_PREFIX = "opa-metrics-"
_OWNER_LOCK = ".owner.lock"  # no ".db": a scrape reads only those


def checked_folder() -> str | None:
    """The folder ``PROMETHEUS_MULTIPROC_DIR`` names, once it is known to be usable; None
    when the variable is not set."""
    value = os.environ.get(FOLDER_VARIABLE)
    if value is None:
        return None
    path = Path(value)
    if not value:
        problem = "is set but empty"
    elif not path.exists():
        problem = f"names {value!r}, which does not exist"
    elif not path.is_dir():
        problem = f"names {value!r}, which is not a folder"
    elif not os.access(path, os.W_OK | os.X_OK):
        problem = f"names {value!r}, which this process cannot write to"
    else:
        return value
    raise ConfigError(
        f"environment variable {FOLDER_VARIABLE} {problem}; with METRICS on it must name an "
        "existing folder opa can write to (each process writes its metrics there), or be "
        "unset"
    )


def multiprocess_mode() -> bool:
    """Whether this process's metrics go to the multiprocess folder."""
    return bool(os.environ.get(FOLDER_VARIABLE))


def _mark_dead(pid: int, folder: str) -> None:
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(pid, folder)  # type: ignore[no-untyped-call]


def this_process_ends() -> None:
    """In multiprocess mode, forget this process's gauges of the live modes: it is
    shutting down, and whoever started it may not know to."""
    folder = os.environ.get(FOLDER_VARIABLE)
    if folder:
        _mark_dead(os.getpid(), folder)


def _locked(path: Path, flags: int = 0) -> int:
    """An open descriptor of *path* (opened with *flags* added) under an exclusive lock,
    which it keeps until closed or its process ends. OSError when the file is missing or
    not this user's, BlockingIOError when another descriptor holds the lock."""
    descriptor = os.open(path, os.O_RDWR | flags, 0o600)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(descriptor)
        raise
    return descriptor


def _claim(folder: Path) -> int:
    """Lock *folder* as this process's. The lock file is locked under another name, then
    renamed into place, so a sweep never finds it unlocked while its owner lives."""
    claiming = folder / f".claiming-{os.getpid()}"
    descriptor = _locked(claiming, os.O_CREAT | os.O_EXCL)
    claiming.rename(folder / _OWNER_LOCK)
    return descriptor


def _is_own_folder(path: Path) -> bool:
    """A real folder (not a link to one) of this process's user."""
    try:
        info = path.lstat()
    except OSError:  # gone meanwhile
        return False
    return stat.S_ISDIR(info.st_mode) and info.st_uid == os.getuid()


def remove_abandoned_folders(parent: Path) -> None:
    """Remove this user's private folders in *parent* whose owner lock nobody holds. A
    folder with no lock file (being made, or made by hand) is left alone."""
    for folder in sorted(parent.glob(f"{_PREFIX}*")):
        if not _is_own_folder(folder):
            continue
        try:
            descriptor = _locked(folder / _OWNER_LOCK)
        except OSError:  # no lock file, or its owner lives
            continue
        try:
            shutil.rmtree(folder, ignore_errors=True)
        finally:
            os.close(descriptor)


class MetricsFolder:
    """The multiprocess folder of a group of processes, from before they start."""

    def __init__(self) -> None:
        given = checked_folder()
        self.owned = given is None
        self._lock: int | None = None
        if given is None:
            parent = Path(tempfile.gettempdir())
            remove_abandoned_folders(parent)
            # mkdtemp makes it readable and writable by this user alone.
            folder = Path(tempfile.mkdtemp(prefix=_PREFIX, dir=parent))
            self._lock = _claim(folder)
            given = str(folder)
        self.path = given
        # Set before the processes start: spawned ones inherit it, forked ones too.
        os.environ[FOLDER_VARIABLE] = self.path

    def process_ended(self, pid: int) -> None:
        """Forget the gauges of process *pid*, which has ended; its counters still count."""
        _mark_dead(pid, self.path)

    def close(self) -> None:
        """Remove the folder if it was made here; a folder of the user's is left as it is."""
        if self.owned:
            os.environ.pop(FOLDER_VARIABLE, None)
            shutil.rmtree(self.path, ignore_errors=True)
        if self._lock is not None:
            os.close(self._lock)
            self._lock = None
