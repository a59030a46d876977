"""CMS level weights at any token, fast enough for a scrubber (``Recording.cms_weights`` uses it).

The recording holds each layer's CMS input, initial states and parameters, not the fast weights at
every token (the weights are D x h per level and token). This class replays the chain once, keeps
the level states every ``every`` tokens, and answers any t by replaying at most ``every - 1``
tokens from the checkpoint before it. Each segment runs at its own stream position, so block
boundaries (and so the weights) are the same as in one replay.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from ..state import CMSLevelState
from . import streams

if TYPE_CHECKING:
    from .recording import Recording


class CMSReplay:
    def __init__(self, recording: Recording, layer: int, every: int = 32):
        self.cms, self.initial = recording.cms_chain(layer)
        self.inputs = recording.tensors[streams.cms(layer, "input")]
        self.start, self.ablation, self.every = recording.start_position, recording.ablation, every
        self._checkpoints: list[list[CMSLevelState]] | None = None  # states after tokens every-1, 2 every-1, ...

    def _run(self, states, first: int, last: int):
        """Level states after token ``last``, from ``states`` (the states before token ``first``)."""
        if last < first:
            return states
        with torch.no_grad():
            _, states, _ = self.cms(self.inputs[None, first:last + 1], states, self.start + first, self.ablation)
        return states

    def _build(self):
        self._checkpoints, states = [], self.initial
        for end in range(self.every - 1, self.inputs.shape[0], self.every):
            states = self._run(states, end - self.every + 1, end)
            self._checkpoints.append(states)

    def states(self, t: int) -> list[CMSLevelState]:
        """Level states after token t (t = -1: before the first token)."""
        if not -1 <= t < self.inputs.shape[0]:
            raise IndexError(f"token {t} is outside this recording")
        if self._checkpoints is None:
            self._build()
        k = (t + 1) // self.every  # whole segments before t's
        base = self._checkpoints[k - 1] if k else self.initial
        return self._run(base, k * self.every, t)

    def weights(self, t: int) -> list[torch.Tensor]:
        """Every level's fast weights after token t, [D, h] each."""
        return [s.memory[0, 0] for s in self.states(t)]


class LMUpdatesReplay:
    """An lm level's weights at any token (``cms_objective="lm"``): it learns from the model's loss, so the
    recording keeps its weights after each update and the weights after token t are the last kept at or
    before t (the initial ones before the first)."""

    def __init__(self, recording: Recording, layer: int):
        n_levels = len(recording.config.cms_periods)
        self.initial = [recording.tensors[streams.cms(layer, f"initial.{j}.memory")] for j in range(n_levels)]
        self.tokens = [recording.tensors[streams.cms(layer, f"updates.{j}.tokens")] for j in range(n_levels)]
        self.memory = [recording.tensors[streams.cms(layer, f"updates.{j}.memory")] for j in range(n_levels)]
        self.n_tokens = recording.n_tokens

    def weights(self, t: int) -> list[torch.Tensor]:
        """Every level's fast weights after token t, [D, h] each."""
        if not -1 <= t < self.n_tokens:
            raise IndexError(f"token {t} is outside this recording")
        out = []
        for initial, tokens, memory in zip(self.initial, self.tokens, self.memory):
            k = int(torch.searchsorted(tokens, torch.tensor(t), right=True))  # updates at tokens <= t
            out.append(memory[k - 1] if k else initial)
        return out
