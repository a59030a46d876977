"""Admission control for a shared server: at most ``max_running`` model runs at once across every
browser session, the rest wait in one first-come queue (each waiter is told its place), one run or
wait per session at a time, a bounded queue and a bounded wait.

No Streamlit here; the app keeps one :class:`Admission` for runs and one for the full validation
(``app_pages/serving.py``), sized by the settings below (docs/dashboard.md "Serving a classroom").
"""
from __future__ import annotations

import contextlib
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass


class Busy(RuntimeError):
    """A run that was not admitted; the message is one line for the user."""


@dataclass(frozen=True)
class AdmissionSettings:
    max_running: int = 2  # model runs computing at once, server-wide (one per CPU core suits a CPU server)
    max_waiting: int = 60  # runs allowed to wait; more are refused at once
    wait_limit_s: float = 120.0  # a run that waited this long gives up with a message
    run_deadline_s: float = 30.0  # an Explore run stops at its next piece after this long (partial results)
    max_validations: int = 1  # full validation suites at once, server-wide (each is minutes of CPU)

    ENV = {"max_running": "NLE_MAX_RUNNING", "max_waiting": "NLE_MAX_WAITING", "wait_limit_s": "NLE_WAIT_LIMIT_S",
           "run_deadline_s": "NLE_RUN_DEADLINE_S", "max_validations": "NLE_MAX_VALIDATIONS"}

    @classmethod
    def from_environment(cls, environ: dict | None = None) -> "AdmissionSettings":
        """Defaults overridden by NLE_* variables; a malformed or out-of-range value is a ValueError."""
        environ = os.environ if environ is None else environ
        values = {}
        for name, variable in cls.ENV.items():
            if variable not in environ:
                continue
            kind = int if name.startswith("max_") else float
            try:
                value = kind(environ[variable])
            except ValueError:
                raise ValueError(f"{variable}={environ[variable]!r} is not a{'n integer' if kind is int else ' number'}") from None
            low, high = (1, 10_000) if kind is int else (0.1, 86_400.0)
            if not low <= value <= high:
                raise ValueError(f"{variable}={value} must be in [{low}, {high}]")
            values[name] = value
        return cls(**values)


class Admission:
    """A bounded pool of run slots with a first-come queue. Thread-safe; Streamlit runs each
    session's script in its own thread."""

    def __init__(self, max_running: int, max_waiting: int, what: str = "run"):
        if max_running < 1 or max_waiting < 0:
            raise ValueError("max_running must be >= 1 and max_waiting >= 0")
        self.max_running, self.max_waiting, self.what = max_running, max_waiting, what
        self._condition = threading.Condition()
        self._queue: deque[str] = deque()  # owners waiting, first come first
        self._running: set[str] = set()

    def counts(self) -> tuple[int, int]:
        """(running, waiting) now."""
        with self._condition:
            return len(self._running), len(self._queue)

    @contextlib.contextmanager
    def slot(self, owner: str, on_wait: Callable[[int], None] | None = None,
             wait_limit_s: float = 120.0, poll_s: float = 0.25) -> Iterator[None]:
        """Hold one slot for ``owner`` (a browser session) while the block runs. While queued,
        ``on_wait(place)`` is called (place 1 = next) every ``poll_s``. An owner whose previous run still
        holds a slot (one a Reset discarded finishes its piece) waits for it: one slot per session at a
        time. Raises Busy when the owner already waits, the queue is full, or the wait passes ``wait_limit_s``."""
        with self._condition:
            if owner in self._queue:
                raise Busy(f"Your previous {self.what} is still waiting: wait for it to start, then try again.")
            if not self._can_start() and len(self._queue) >= self.max_waiting:
                raise Busy(f"The server is full ({len(self._running)} {self.what}s running, {len(self._queue)} waiting): "
                           "try again in a minute.")
            self._queue.append(owner)
        waited_since = time.monotonic()
        try:
            while True:
                with self._condition:
                    if self._queue[0] == owner and self._can_start() and owner not in self._running:
                        self._queue.popleft()
                        self._running.add(owner)
                        break
                    place = self._queue.index(owner) + 1
                    if time.monotonic() - waited_since > wait_limit_s:
                        raise Busy(f"Waited {wait_limit_s:g} s at place {place} in the queue: the server is busy, "
                                   "try again in a minute.")
                if on_wait is not None:
                    on_wait(place)  # outside the lock: it draws on the page
                with self._condition:
                    self._condition.wait(poll_s)
        except BaseException:
            with self._condition:
                if owner in self._queue:
                    self._queue.remove(owner)
                self._condition.notify_all()
            raise
        try:
            yield
        finally:
            with self._condition:
                self._running.discard(owner)
                self._condition.notify_all()

    def _can_start(self) -> bool:
        return len(self._running) < self.max_running
