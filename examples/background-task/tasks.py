"""Background tasks that run one at a time, across every worker, under a walrus lock.

``POST /tasks?name=report&seconds=1`` answers at once and runs the task after the response;
``GET /tasks/running`` names the task holding the lock; ``GET /tasks/done`` lists the
finished ones with their start and end times.
"""

import json
import time
from typing import Annotated, Any

from fastapi import BackgroundTasks, Query

from opa import config, get_instance, get_router

router = get_router(prefix="/tasks", tags=["background tasks"])

# The lock expires after its TTL even if its holder died, so a crash cannot block the queue
# for good. A task must end within it (MAX_SECONDS), or a second task could start beside it.
LOCK_TTL_MS = 3000
MAX_SECONDS = 2.0
KEEP_DONE = 100


def key(name: str) -> str:
    return f"{config.TASKS_KEY_PREFIX}{name}"


def run_task(name: str, seconds: float) -> None:
    """The task: wait for the lock, say it is running, work, then record it as done."""
    db = get_instance("walrus")
    with db.lock(key("lock"), ttl=LOCK_TTL_MS):
        started = time.time()
        db.set(key("running"), name)
        try:
            time.sleep(seconds)  # the work itself
        finally:
            db.delete(key("running"))
        record = {"name": name, "started": started, "finished": time.time()}
        db.rpush(key("done"), json.dumps(record))
        db.ltrim(key("done"), -KEEP_DONE, -1)


@router.post("", status_code=202)
def queue(
    tasks: BackgroundTasks,
    name: Annotated[str, Query(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")],
    seconds: Annotated[float, Query(ge=0, le=MAX_SECONDS)] = 1.0,
) -> dict[str, str]:
    """Queue task *name* that works for *seconds*; it runs once the response is sent."""
    tasks.add_task(run_task, name, seconds)
    return {"queued": name}


@router.get("/running")
def running() -> dict[str, str | None]:
    """The task that holds the lock now, or null."""
    name: str | None = get_instance("walrus").get(key("running"))
    return {"running": name}


@router.get("/done")
def done() -> list[dict[str, Any]]:
    """The last finished tasks, oldest first."""
    return [json.loads(item) for item in get_instance("walrus").lrange(key("done"), 0, -1)]
