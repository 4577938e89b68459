"""A computation in a worker thread that a modal operator polls: progress, cancel, result or a
user-facing error. The work itself never touches bpy."""

from __future__ import annotations

import threading
import traceback
from typing import Any, Callable

from ..core.errors import TalkingHeadError


class WorkerJob:
    """Runs `work(request, progress, should_cancel)` in a thread; `what` names it in messages."""

    def __init__(self, request: Any, work: Callable, what: str):
        self.request = request
        self.progress = 0.0
        self.message = "Starting"
        self.result: Any = None
        self.error: str | None = None
        self._work, self._what = work, what
        self._cancel = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"talking-head-{what}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def cancel(self) -> None:
        self._cancel.set()

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set()

    @property
    def done(self) -> bool:
        return not self._thread.is_alive()

    def wait(self, timeout: float | None = None) -> None:
        self._thread.join(timeout)

    def _report(self, fraction: float, message: str) -> None:
        self.progress, self.message = float(fraction), message

    def _run(self) -> None:
        try:
            self.result = self._work(self.request, self._report, self._cancel.is_set)
        except TalkingHeadError as exc:  # Cancelled included: its message says nothing was written
            self.error = str(exc)
        except Exception as exc:  # an unexpected failure still reaches the user as a message
            traceback.print_exc()
            self.error = f"The {self._what} failed unexpectedly ({type(exc).__name__}: {exc}). Please report this."
