"""The private multiprocess folders of ``--workers`` and ``opa worker``: one left by a killed
process is removed by the next one made, and never one whose owner (or a child it forked)
still lives."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from opa._metrics_folder import FOLDER_VARIABLE, MetricsFolder

# Makes a folder in TMPDIR, prints its path, then does what argv[1] says: "die" (SIGKILL
# itself, so nothing is removed), "wait" (until its standard input closes), or "fork-die"
# (fork a child that waits so, then SIGKILL itself).
OWNER = """
import os, signal, sys
from opa._metrics_folder import MetricsFolder

folder = MetricsFolder()
print(folder.path, flush=True)
if sys.argv[1] == "fork-die" and os.fork() == 0:
    sys.stdin.read()
    os._exit(0)
if sys.argv[1] in ("die", "fork-die"):
    os.kill(os.getpid(), signal.SIGKILL)
sys.stdin.read()
"""


@pytest.fixture
def temp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A temporary folder of this test's own, for this process and the ones it starts."""
    monkeypatch.delenv(FOLDER_VARIABLE, raising=False)
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    return tmp_path


@contextmanager
def owner(how: str) -> Iterator[tuple[Path, subprocess.Popen[str]]]:
    """A process that made a folder and did *how*; its folder and the process. Its
    standard input is closed at the end, which ends it (and a child it forked), and the end
    is awaited."""
    process = subprocess.Popen(
        [sys.executable, "-c", OWNER, how], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert process.stdout is not None and process.stdin is not None
    try:
        yield Path(process.stdout.readline().strip()), process
    finally:
        process.stdin.close()
        process.stdout.read()  # the end of file comes once it and any child it forked ended
        process.wait(timeout=30)


@contextmanager
def made() -> Iterator[Path]:
    """A folder made here, as ``opa run --workers`` makes one; removed at the end."""
    folder = MetricsFolder()
    try:
        yield Path(folder.path)
    finally:
        folder.close()


def test_a_folder_left_by_a_killed_process_is_removed_by_the_next(temp: Path) -> None:
    with owner("die") as (left, process):
        process.wait(timeout=30)
        assert left.is_dir() and left.parent == temp
        with made() as mine:
            assert not left.exists()
            assert mine.is_dir()


def test_a_folder_whose_owner_lives_is_kept(temp: Path) -> None:
    with owner("wait") as (theirs, _), made() as mine:
        assert theirs.is_dir() and mine.is_dir() and theirs != mine


def test_a_folder_whose_owner_died_is_kept_while_a_child_it_forked_lives(temp: Path) -> None:
    """A Celery pool's processes are forked and keep writing there: their parent's death
    does not make the folder abandoned."""
    with owner("fork-die") as (theirs, process):
        process.wait(timeout=30)
        with made():
            assert theirs.is_dir()
    # The child has ended (the owner context awaits it): the folder is abandoned now.
    with made():
        assert not theirs.exists()


def test_two_folders_of_one_process_keep_each_other(temp: Path) -> None:
    with made() as first, made() as second:
        assert first.is_dir() and second.is_dir()


def test_a_folder_without_an_owner_lock_is_left_alone(temp: Path) -> None:
    """One made by hand, or by an opa from before the lock: not known to be abandoned."""
    (temp / "opa-metrics-mine").mkdir()
    (temp / "opa-metrics-mine" / "counter_1.db").write_bytes(b"")
    with made():
        assert (temp / "opa-metrics-mine" / "counter_1.db").exists()


def test_a_link_named_like_a_folder_is_left_alone(temp: Path, tmp_path_factory: Any) -> None:
    """What a link of the name points to is never removed, whatever its lock says."""
    elsewhere = tmp_path_factory.mktemp("elsewhere")
    (elsewhere / ".owner.lock").write_bytes(b"")
    (elsewhere / "keep.txt").write_text("mine")
    (temp / "opa-metrics-link").symlink_to(elsewhere)
    with made():
        assert (temp / "opa-metrics-link").is_symlink()
        assert (elsewhere / "keep.txt").read_text() == "mine"


@pytest.mark.skipif(os.getuid() != 0, reason="only root can make a folder of another user")
def test_an_abandoned_folder_of_another_user_is_left_alone(temp: Path) -> None:
    """Run as root, opa removes no other user's folder, abandoned or not."""
    theirs = temp / "opa-metrics-theirs"
    theirs.mkdir()
    (theirs / ".owner.lock").write_bytes(b"")  # nobody holds it
    os.chown(theirs, 65534, 65534)
    with made():
        assert (theirs / ".owner.lock").exists()


def test_the_owner_lock_is_not_read_as_metrics(temp: Path) -> None:
    """prometheus-client reads the *.db files of the folder; the lock file is not one."""
    with made() as mine:
        assert [path.name for path in mine.iterdir()] == [".owner.lock"]
        assert not list(mine.glob("*.db"))
    assert os.environ.get(FOLDER_VARIABLE) is None
