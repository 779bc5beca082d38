"""The context-manager half shared by the kit's resources (proxies, processes, servers)."""

from __future__ import annotations

from types import TracebackType
from typing import Self


class Closing:
    """``with resource:`` closes it at the end, whatever happened, as ``close()`` does."""

    def close(self) -> None:
        raise NotImplementedError(f"{type(self).__qualname__} must implement close()")

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()
