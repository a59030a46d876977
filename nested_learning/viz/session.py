"""One browser session's memory: the state that carries across runs until Reset, with the checks a
run must pass (length limits, divergence) and the last good state kept when one fails.

No Streamlit here: the page stores a :class:`MemorySession` in ``st.session_state``; the model is
shared and never mutated (every run passes this session's own state).
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import torch

from ..ablation import Ablation
from ..model import HopeTransformer
from ..recording import Recording, record
from ..state import HopeState
from ..tokenizer import ByteTokenizer
from .safe_text import escape_markdown

MAX_RUN_TOKENS = 2048  # one run: keeps a run interactive on a CPU
# A session's memory reads at most this many tokens: the length the shipped model is tested to stream
# bounded (tests/test_shipped_model.py); also bounds the attention cache of a full-attention model.
MAX_SESSION_TOKENS = 16384


class RunRefused(ValueError):
    """A run that was not made; the message is one line for the user. The session is unchanged."""


@dataclass(frozen=True)
class Divergence:
    token_index: int  # in the run
    position: int  # in the stream
    layer: int
    what: str  # the first non-finite quantity

    def message(self, label: str = "") -> str:
        where = f" (character {escape_markdown(label)})" if label else ""  # shown in a Markdown message
        return (f"The run diverged at token {self.token_index}{where}, stream position {self.position}, "
                f"layer {self.layer}: {self.what} became non-finite. The memory was kept as it was before this run.")


STREAMS_CHECKED = {"memory.surprise": "the memory's surprise", "memory.memory_norm": "the memory",
                   "memory.write_norm": "the memory's write", "cms.input": "the CMS input"}


def non_finite(recording: Recording, new_state: HopeState) -> tuple[int, str] | None:
    """(layer, what) of the lowest layer with a non-finite memory stream, CMS input or next state; None if all
    is finite. Which *token* went first cannot be read from one run: the chunk-wise kernels and attention
    mix a NaN into the other tokens of its chunk (0 * NaN = NaN), so :func:`locate_divergence` bisects."""
    for layer in range(recording.config.n_layers):
        for name, what in STREAMS_CHECKED.items():
            key = f"layers.{layer}.{name}"
            if key in recording.tensors and not torch.isfinite(recording.tensors[key]).all():
                return layer, what
        for name, tensor in new_state.layers[layer].tensors().items():
            if tensor.is_floating_point() and not torch.isfinite(tensor).all():
                return layer, f"state {name}"
    return None


def locate_divergence(model: HopeTransformer, tokens: torch.Tensor, state: HopeState, ablation: Ablation) -> Divergence:
    """The first token whose prefix run is non-finite (bisection over prefixes of a run known to diverge),
    and the lowest layer where it shows. A prefix run has no later tokens to smear the NaN back."""
    low, high = 0, tokens.numel() - 1
    while low < high:
        middle = (low + high) // 2
        if non_finite(*record(model, tokens[:middle + 1], state=state, ablation=ablation)):
            high = middle
        else:
            low = middle + 1
    found = non_finite(*record(model, tokens[:low + 1], state=state, ablation=ablation))
    layer, what = found if found else (-1, "the output")
    return Divergence(low, state.position + low, layer, what)


@dataclass
class RunResult:
    recording: Recording
    seconds: float


class MemorySession:
    """Memory state of one session for one model. ``model_key`` names the model it belongs to: a state
    only fits the model (and config) that produced it."""

    def __init__(self, model_key: str):
        self.model_key = model_key
        self.state: HopeState | None = None
        self.last: RunResult | None = None
        self.runs = 0

    @property
    def position(self) -> int:
        """Tokens the memory has read since the last reset."""
        return self.state.position if self.state is not None else 0

    def reset(self):
        self.state, self.last, self.runs = None, None, 0

    def check_length(self, n_tokens: int):
        if n_tokens == 0:
            raise RunRefused("Nothing to run: the input is empty.")
        if n_tokens > MAX_RUN_TOKENS:
            raise RunRefused(f"The input is {n_tokens} tokens (UTF-8 bytes); one run takes at most {MAX_RUN_TOKENS}. "
                             f"Shorten it by {n_tokens - MAX_RUN_TOKENS} tokens.")
        if self.position + n_tokens > MAX_SESSION_TOKENS:
            raise RunRefused(f"The memory holds {self.position} tokens and this input adds {n_tokens}; a session holds "
                             f"at most {MAX_SESSION_TOKENS}. Reset the memory to continue.")

    def run(self, model: HopeTransformer, text: str, ablation: Ablation | None = None) -> RunResult:
        """Read ``text`` from the current state. Raises RunRefused (session unchanged) when the input is
        too long or the run diverges; otherwise the new state replaces the old one."""
        if not isinstance(text, str):
            raise RunRefused("The input must be text.")
        n = len(ByteTokenizer().encode(text))
        self.check_length(n)
        started = time.perf_counter()
        state = self.state if self.state is not None else model.init_state(1)
        ablation = ablation or Ablation()
        recording, new_state = record(model, text, state=state, ablation=ablation, max_tokens=MAX_RUN_TOKENS)
        if non_finite(recording, new_state):
            divergence = locate_divergence(model, recording.tokens, state, ablation)
            label = ByteTokenizer.token_label(int(recording.tokens[divergence.token_index]))
            raise RunRefused(divergence.message(label))
        self.state, self.runs = new_state, self.runs + 1
        self.last = RunResult(recording, time.perf_counter() - started)
        return self.last
