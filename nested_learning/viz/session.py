"""One browser session's memory: the state that carries across runs until Reset, with the checks a
run must pass (length limits, divergence) and the last good state kept when one fails.

No Streamlit here: the page stores a :class:`MemorySession` in ``st.session_state``; the model is
shared and never mutated (every run passes this session's own state).
"""
from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch

from ..ablation import Ablation
from ..model import HopeTransformer
from ..recording import Recording
from ..state import HopeState
from ..tokenizer import ByteTokenizer
from .guard import RunRefused, guarded_record_in_pieces

MAX_RUN_TOKENS = 2048  # one run: keeps a run interactive on a CPU
# A session's memory reads at most this many tokens: the length the shipped model is tested to stream
# bounded (tests/test_shipped_model.py); also bounds the attention cache of a full-attention model.
MAX_SESSION_TOKENS = 16384
PIECE_TOKENS = 512  # a run is read in pieces this long: the points where a deadline or a reset can stop it


def first_tokens(text: str, n: int) -> str:
    """The text's first ``n`` tokens (UTF-8 bytes), cut back to a whole character: what "keep the first N
    tokens" runs (at most ``n`` bytes, never half a character)."""
    return text.encode("utf-8", errors="replace")[:n].decode("utf-8", errors="ignore")


class RunDiscarded(RunRefused):
    """A run that finished after the memory it started from was reset or replaced."""


@dataclass
class RunResult:
    recording: Recording
    seconds: float
    tokens_asked: int = 0  # the input's length; recording.n_tokens of them were read
    start_state: HopeState | None = None  # the memory the run started from (None: a fresh one), for its controls

    @property
    def complete(self) -> bool:
        return self.recording.n_tokens >= self.tokens_asked

    def partial_notice(self, deadline_s: float) -> str | None:
        """One line when the run stopped at its deadline, else None."""
        if self.complete:
            return None
        return (f"Stopped at the {deadline_s:g}-second deadline after {self.recording.n_tokens} of {self.tokens_asked} "
                f"tokens (the server is busy): these results and the memory cover the first {self.recording.n_tokens}.")


KEPT_RECORDINGS = 5  # earlier runs whose recordings stay for overlays (a 2,048-token recording is a few MB)


@dataclass(frozen=True)
class RunEntry:
    """One committed run, as the sidebar lists it: what the memory read, in order."""
    name: str  # "Run 3"
    start: int  # stream positions start .. start + tokens - 1
    tokens: int
    excerpt: str  # the first characters of its text
    off: tuple[str, ...]  # switches off in this run
    complete: bool


class MemorySession:
    """Memory state of one session for one model. ``model_key`` names the model it belongs to: a state
    only fits the model (and config) that produced it.

    Runs and resets are ordered: every reset and every committed run advances ``version``, and a run
    commits its new state only if the version is still the one it started from. A run that finishes
    after a Reset (or after another run of the same session committed first) is discarded with
    :class:`RunDiscarded`; a Streamlit rerun may start a new run while the old thread still computes."""

    def __init__(self, model_key: str):
        self.model_key = model_key
        self.state: HopeState | None = None
        self.last: RunResult | None = None
        self.version = 0
        self.history: list[RunEntry] = []  # every run since the last reset, in order
        self.recordings: dict[str, Recording] = {}  # the last KEPT_RECORDINGS runs' recordings, by name
        self._commit = threading.Lock()  # the version check and the write are one step

    @property
    def runs(self) -> int:
        """Runs committed since the last reset."""
        return len(self.history)

    @property
    def position(self) -> int:
        """Tokens the memory has read since the last reset."""
        return self.state.position if self.state is not None else 0

    def reset(self):
        with self._commit:
            self.state, self.last, self.version = None, None, self.version + 1
            self.history, self.recordings = [], {}

    def room(self) -> int:
        """Tokens the next run may read: one run's limit, or what the session has left."""
        return max(0, min(MAX_RUN_TOKENS, MAX_SESSION_TOKENS - self.position))

    def check_length(self, n_tokens: int):
        if n_tokens == 0:
            raise RunRefused("Nothing to run: the input is empty.")
        if n_tokens > MAX_RUN_TOKENS:
            raise RunRefused(f"The input is {n_tokens} tokens (UTF-8 bytes); one run takes at most {MAX_RUN_TOKENS}. "
                             f"Shorten it by {n_tokens - MAX_RUN_TOKENS} tokens, or keep its first {self.room()}.")
        if self.position + n_tokens > MAX_SESSION_TOKENS:
            raise RunRefused(f"The memory holds {self.position} tokens and this input adds {n_tokens}; a session holds "
                             f"at most {MAX_SESSION_TOKENS}. Reset the memory to continue.")

    def run(self, model: HopeTransformer, text: str, ablation: Ablation | None = None,
            deadline_s: float | None = None, asked_at: int | None = None,
            still_wanted: Callable[[], bool] = lambda: True) -> RunResult:
        """Read ``text`` from the current state. Raises RunRefused (session unchanged) when the input is
        too long, the run diverges or the device runs out of memory, RunDiscarded when the memory changed
        during the run; otherwise the new state replaces the old one. Past ``deadline_s`` the run stops
        between pieces of PIECE_TOKENS and keeps what it read (``RunResult.complete`` is then False).

        A Reset wins over a run: ``asked_at`` is the version the Run was asked from (the click), so a reset
        between the click and the start discards the run too; a reset during the run stops it at the next
        piece. ``still_wanted()`` false (the page that asked closed) stops and discards it there as well."""
        if not isinstance(text, str):
            raise RunRefused("The input must be text.")
        with self._commit:
            version, state = self.version, self.state
        if asked_at is not None and asked_at != version:
            raise RunDiscarded("This run was discarded: the memory was reset after Run was pressed.")
        n = len(ByteTokenizer().encode(text))
        self.check_length(n)
        started = time.perf_counter()

        def keep_going(read: int) -> bool:
            in_time = deadline_s is None or time.perf_counter() - started < deadline_s
            return in_time and self.version == version and still_wanted()

        try:
            run = guarded_record_in_pieces(model, text, state=state, ablation=ablation or Ablation(),
                                           piece_tokens=PIECE_TOKENS, keep_going=keep_going, max_tokens=MAX_RUN_TOKENS)
        except RunRefused as e:
            raise RunRefused(f"{e} The memory was kept as it was before this run.") from None
        except torch.OutOfMemoryError:  # the device's memory, not this session's: the state before the run stays
            raise RunRefused(f"The {model.device.type.upper()} ran out of memory reading {n} tokens: try a shorter "
                             "input or wait for other runs to finish. The memory was kept as it was before this run.") from None
        if not still_wanted():
            raise RunDiscarded("This run was discarded: the page that asked for it was closed.")
        with self._commit:
            if self.version != version:
                raise RunDiscarded("This run was discarded: the memory was reset or changed while it ran.")
            self.state, self.version = run.state, self.version + 1
            self.last = RunResult(run.recording, time.perf_counter() - started, run.tokens_asked, state)
            self._remember(run.recording, run.tokens_asked)
            return self.last

    def _remember(self, recording: Recording, tokens_asked: int):
        name = f"Run {len(self.history) + 1}"
        text = bytes(recording.tokens[:40].tolist()).decode("utf-8", errors="replace")
        self.history.append(RunEntry(name, recording.start_position, recording.n_tokens, " ".join(text.split()),
                                     tuple(recording.ablation.names_off()), recording.n_tokens >= tokens_asked))
        self.recordings[name] = recording
        while len(self.recordings) > KEPT_RECORDINGS:
            self.recordings.pop(next(iter(self.recordings)))
