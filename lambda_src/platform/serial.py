"""Work a consumer hands off to go on in order behind it: one thread of its own, one task after the other."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from types import TracebackType
from typing import Any, Self


class SerialWork:
    """A queue of tasks run one after another on a thread of its own; a context manager that finishes them at the
    end. Subclasses add what their ``close`` must do after the queue is finished."""

    def __init__(self, thread_name: str) -> None:
        self._queue = ThreadPoolExecutor(1, thread_name_prefix=thread_name)

    def later(self, task: Callable[..., Any], *arguments: Any) -> Future[Any]:
        """Queue ``task(*arguments)`` behind what is queued already."""
        return self._queue.submit(task, *arguments)

    def settle(self) -> None:
        """Wait for the tasks queued so far."""
        self._queue.submit(lambda: None).result()

    def close(self) -> None:
        """Finish the tasks queued, then stop the thread."""
        self._queue.shutdown()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()
