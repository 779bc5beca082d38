"""A ``redis.asyncio.Redis`` whose every command finishes within one deadline.

redis-py bounds each socket operation by ``socket_timeout``; on Python 3.11 its send path
does so with ``asyncio.wait_for``, which starts a task per command. That made the timeout
cost about 17 us a command here, a tenth of a whole counter request. ``asyncio.timeout``
around each command is cheaper alone but costs about 10 us under load, when every
command pushes a timer onto the event loop's heap and cancels it. Every command of a
client has the same timeout, so deadlines expire in the order commands start: one timer,
set for the oldest running command, is enough (:class:`CommandDeadlines`).

The deadline bounds more than the socket: the wait for a pooled connection, the
health-check PING, retries with their backoff, and the reply. A command cut by it leaves
its connection closed (redis-py drops a connection whose command was cancelled), so the
next command gets a clean one. Pub/sub reads are not commands and are not bounded: they
wait for messages, with ``get_message(timeout=)``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any, TypeVar

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.exceptions import TimeoutError as RedisTimeoutError

T = TypeVar("T")


class _Running:
    """One command in flight: its task, when it must end, and whether it was cut."""

    __slots__ = ("cancelling", "cut", "deadline", "task")

    def __init__(self, task: asyncio.Task[Any], deadline: float) -> None:
        self.task = task
        self.deadline = deadline
        self.cancelling = task.cancelling()
        self.cut = False


class CommandDeadlines:
    """Cancels any command of one client still running *seconds* after it started."""

    def __init__(self, seconds: float | None) -> None:
        self.seconds = seconds
        self._running: dict[_Running, None] = {}  # in start order, so in deadline order
        self._timer: asyncio.TimerHandle | None = None
        self._timer_loop: asyncio.AbstractEventLoop | None = None

    async def run(self, command: Awaitable[T]) -> T:
        """Await *command*; raise redis-py's ``TimeoutError`` if its deadline passes."""
        task = asyncio.current_task()
        if self.seconds is None or task is None:
            return await command
        loop = asyncio.get_running_loop()
        running = _Running(task, loop.time() + self.seconds)
        self._running[running] = None
        if self._timer is None or self._timer_loop is not loop:
            self._arm(loop, running.deadline)
        try:
            return await command
        except asyncio.CancelledError:
            if running.cut and task.uncancel() <= running.cancelling:
                raise RedisTimeoutError(f"no reply from Redis within {self.seconds:g} s") from None
            raise
        finally:
            del self._running[running]

    def _arm(self, loop: asyncio.AbstractEventLoop, when: float) -> None:
        self._timer = loop.call_at(when, self._expire, loop)
        self._timer_loop = loop

    def _expire(self, loop: asyncio.AbstractEventLoop) -> None:
        """Cut every command past its deadline, then wait for the next one's."""
        self._timer = None
        now = loop.time()
        for running in list(self._running):
            if running.deadline > now:
                self._arm(loop, running.deadline)
                return
            if not running.cut:
                running.cut = True
                running.task.cancel()


class DeadlineRedis(Redis):
    """``redis.asyncio.Redis`` with ``command_timeout`` seconds for each command."""

    def __init__(self, *args: Any, command_timeout: float | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.deadlines = CommandDeadlines(command_timeout)

    async def execute_command(self, *args: Any, **options: Any) -> Any:
        # redis-py leaves these methods unannotated.
        command = super().execute_command(*args, **options)  # type: ignore[no-untyped-call]
        return await self.deadlines.run(command)

    def pipeline(self, transaction: bool = True, shard_hint: str | None = None) -> Pipeline:
        return DeadlinePipeline(
            self.connection_pool,
            self.response_callbacks,
            transaction,
            shard_hint,
            deadlines=self.deadlines,
        )

    def client(self) -> DeadlineRedis:
        """A client on one dedicated connection, with the same deadline."""
        return DeadlineRedis(
            connection_pool=self.connection_pool,
            single_connection_client=True,
            command_timeout=self.deadlines.seconds,
        )


class DeadlinePipeline(Pipeline):
    """A pipeline whose ``execute()`` (and each command while watching) has the deadline."""

    def __init__(self, *args: Any, deadlines: CommandDeadlines, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.deadlines = deadlines

    async def execute(self, raise_on_error: bool = True) -> list[Any]:
        return await self.deadlines.run(super().execute(raise_on_error))

    async def immediate_execute_command(self, *args: Any, **options: Any) -> Any:
        command = super().immediate_execute_command(*args, **options)  # type: ignore[no-untyped-call]
        return await self.deadlines.run(command)
