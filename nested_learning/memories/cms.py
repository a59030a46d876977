"""Continuum Memory System (Hope eq 70-75): a chain of memory levels with different update periods.

    y = level_{K-1}( ... level_0(x))        level_l(z) = z + W_l phi_l(z),  phi_l(z) = l2norm(silu(U_l z))

``W_l`` is the level's fast weight (state), initialised from a learned parameter; ``U_l`` is learned
(slow). Level l is frozen inside each block of ``period_l`` tokens of the stream and applies ONE
update at the block's end: the sum over the block of its objective's gradients times its learning
rate, with a per-level retention.

Objective ``"local"`` (the default): predict the next level input,
``1/2 ||level(z_{t-1}) - z_t||^2``, whose gradient w.r.t. W is the delta rule with key phi(z_{t-1})
and value z_t - z_{t-1}. It needs no labels, is causal (the pair is complete at token t) and makes
every level a delta-rule memory, so the block-masked chunk kernel (``ops/block_delta.py``) runs any
period in parallel. Why only W and not U is fast: updating U makes the update nonlinear in the
weights and forces a per-token Python loop for the period-1 level.
Stability: keys are unit vectors and the learning rate is at most 1/period, so a block update
``W (I - lr sum k k^T)`` never overshoots.

Objective ``"lm"`` (the paper's eq 71 with the task objective; docs/model-options.md): the level's
pending sum collects ``-lr`` times the gradient of the next-token loss w.r.t. ``W``. That gradient
needs the whole model above the level, so the model computes it (``HopeTransformer.forward`` with
``targets``) and hands it to :meth:`CMSLevel.lm_step`; here an lm level only reads its frozen ``W``.
"""
from __future__ import annotations

import dataclasses

import torch
import torch.nn as nn

from ..ablation import Ablation
from ..ops import block_delta_rule, l2norm
from ..ops.shape_check import shapes
from ..state import CMS_LEVEL_STATE_SHAPES, CMSLevelState, HopeState
from ..trace import CMSLevelTrace, CMSTrace


class CMSLevel(nn.Module):
    def __init__(self, d_model: int, hidden: int, period: int, objective: str = "local"):
        super().__init__()
        self.period = period
        self.objective = objective
        self.key_proj = nn.Linear(d_model, hidden, bias=False)
        self.initial_memory = nn.Parameter(torch.zeros(d_model, hidden))
        self.lr_logit = nn.Parameter(torch.tensor(0.0))  # learning rate = sigmoid(.) / period
        self.retention_logit = nn.Parameter(torch.tensor(4.0))  # retention = sigmoid(.), starts at 0.98

    @shapes(batch_size="B", returns=CMS_LEVEL_STATE_SHAPES)
    def init_state(self, batch_size: int) -> CMSLevelState:
        memory = self.initial_memory[None, None].expand(batch_size, 1, -1, -1)
        return CMSLevelState(memory, torch.zeros_like(memory),
                             memory.new_zeros(batch_size, self.initial_memory.shape[0]))

    def learning_rate(self) -> torch.Tensor:
        return torch.sigmoid(self.lr_logit) / self.period

    def features(self, z: torch.Tensor) -> torch.Tensor:
        return l2norm(torch.nn.functional.silu(self.key_proj(z)))

    @shapes(z="B T D", state=CMS_LEVEL_STATE_SHAPES, returns=("B T D", CMS_LEVEL_STATE_SHAPES))
    def forward(self, z: torch.Tensor, state: CMSLevelState, position: int, ablation: Ablation,
                trace: bool = False) -> tuple[torch.Tensor, CMSLevelState, CMSLevelTrace | None]:
        """z [B, T, D] -> (level(z) [B, T, D], new state, the level's write pairs with ``trace`` and
        test-time updates on, else None). The level's memory is D x h: values D wide, keys h."""
        B, T, _ = z.shape
        if self.objective == "lm" and trace:
            raise ValueError("recording (trace) needs cms_objective 'local': an lm level's updates come from the model's loss")
        if not ablation.test_time_updates or self.objective == "lm":  # lm: updates come from lm_step
            read = self.features(z) @ state.memory[:, 0].transpose(-1, -2)
            return z + read, state, None
        # Inputs with the previous token's in front: token t writes (phi(z_{t-1}) -> z_t - z_{t-1}), reads phi(z_t).
        inputs = torch.cat([state.previous_input[:, None], z], dim=1)  # [B, T + 1, D]
        features = self.features(inputs)[:, None]  # [B, 1, T + 1, h]
        eta = self.learning_rate().expand(B, 1, T)
        if position == 0:  # the stream's first token has no previous input to learn from
            eta = torch.cat([torch.zeros_like(eta[..., :1]), eta[..., 1:]], dim=-1)
        log_retention = nn.functional.logsigmoid(self.retention_logit) if ablation.retention else torch.zeros(())
        values = inputs.diff(dim=1)  # z_t - z_{t-1}
        result = block_delta_rule(features[:, :, 1:], features[:, :, :-1], values[:, None], eta,
                                  log_retention, state.memory, state.pending, position, self.period,
                                  return_writes=trace)
        # the level's write pairs, for the recording's update events
        pairs = CMSLevelTrace(keys=features[:, 0, :-1], values=values, writes=result.writes[:, 0],
                              learning_rate=eta[:, 0], retention=log_retention.exp()) if trace else None
        # The kernel's output is a fresh tensor no backward needs: the residual is added in place.
        # previous_input is copied: a view would keep the whole [B, T, D] input alive with the state.
        return result.output[:, 0].add_(z), CMSLevelState(result.memory, result.pending, z[:, -1].clone()), pairs

    def lm_step(self, state: CMSLevelState, gradient: torch.Tensor | None, end: int,
                ablation: Ablation) -> CMSLevelState:
        """Objective "lm": add ``-lr * gradient`` (the next-token loss's gradient w.r.t. the ``W`` read
        by the tokens before stream position ``end``; None when they had no targets) to the pending
        sum, and apply ``W <- retention W + pending`` when ``end`` closes a block."""
        pending = state.pending if gradient is None else state.pending - self.learning_rate() * gradient
        if end % self.period:
            return CMSLevelState(state.memory, pending, state.previous_input)
        retention = torch.sigmoid(self.retention_logit) if ablation.retention else 1.0
        return CMSLevelState(retention * state.memory + pending, torch.zeros_like(pending), state.previous_input)


class ContinuumMemorySystem(nn.Module):
    def __init__(self, d_model: int, hidden: int, periods: tuple[int, ...], objective: str = "local"):
        super().__init__()
        self.periods = tuple(periods)
        self.objective = objective
        self.levels = nn.ModuleList(CMSLevel(d_model, hidden, p, objective) for p in periods)

    def init_state(self, batch_size: int) -> list[CMSLevelState]:
        return [level.init_state(batch_size) for level in self.levels]

    @shapes(x="B T D", returns=("B T D", None))  # each level checks its own state
    def forward(self, x: torch.Tensor, states: list[CMSLevelState], position: int, ablation: Ablation = Ablation(),
                trace: bool = False, trace_levels: bool = True
                ) -> tuple[torch.Tensor, list[CMSLevelState], CMSTrace | None]:
        """-> (y, new states, with ``trace`` the chain's input and, with ``trace_levels``, each level's write
        pairs). The input alone suffices to replay every level exactly from the initial states."""
        new_states, levels, inputs = [], [], x
        for i, (level, state) in enumerate(zip(self.levels, states)):
            pairs = None
            if ablation.cms_level(i):
                x, state, pairs = level(x, state, position, ablation, trace and trace_levels)
            new_states.append(state)
            levels.append(pairs)
        return x, new_states, CMSTrace(inputs, tuple(levels) if trace_levels else ()) if trace else None


def lm_pieces(start: int, length: int, periods) -> list[tuple[int, int]]:
    """Split a call of ``length`` tokens starting at stream position ``start`` where any period's block
    ends: [(a, b), ...] relative to the call."""
    cuts = {length}
    for period in set(periods):
        cuts.update(range((start // period + 1) * period - start, length, period))
    edges = sorted(cuts)
    return list(zip([0] + edges[:-1], edges))


def with_fast_weights(state: HopeState, outer_grad: bool) -> HopeState:
    """The state with every CMS level's W replaced by a new autograd node: the lm gradient is taken
    w.r.t. it, so it counts the uses of W in this piece only. Under an outer graph it is a view (training
    still reaches W's history); otherwise a fresh leaf."""
    def fast(w):
        return w.view_as(w) if outer_grad and w.requires_grad else w.detach().requires_grad_()
    layers = [dataclasses.replace(layer, cms=[dataclasses.replace(level, memory=fast(level.memory)) for level in layer.cms])
              for layer in state.layers]
    return HopeState(state.position, layers)

