"""Continuum Memory System (Hope eq 70-75): a chain of memory levels with different update periods.

    y = level_{K-1}( ... level_0(x))        level_l(z) = z + W_l phi_l(z),  phi_l(z) = l2norm(silu(U_l z))

``W_l`` is the level's fast weight (state), initialised from a learned parameter; ``U_l`` is learned
(slow). Level l is frozen inside each block of ``period_l`` tokens of the stream and applies ONE
update at the block's end: the sum over the block of its objective's gradients times its learning
rate, with a per-level retention.

Objective ("local", the only one implemented): predict the next level input,
``1/2 ||level(z_{t-1}) - z_t||^2``, whose gradient w.r.t. W is the delta rule with key phi(z_{t-1})
and value z_t - z_{t-1}. It needs no labels, is causal (the pair is complete at token t) and makes
every level a delta-rule memory, so the block-masked chunk kernel (``ops/block_delta.py``) runs any
period in parallel. Why only W and not U is fast: updating U makes the update nonlinear in the
weights and forces a per-token Python loop for the period-1 level.
Stability: keys are unit vectors and the learning rate is at most 1/period, so a block update
``W (I - lr sum k k^T)`` never overshoots.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from ..ablation import Ablation
from ..ops import block_delta_rule, l2norm
from ..ops.shape_check import shapes
from ..state import CMS_LEVEL_STATE_SHAPES, CMSLevelState


class CMSLevel(nn.Module):
    def __init__(self, d_model: int, hidden: int, period: int):
        super().__init__()
        self.period = period
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
                trace: dict | None = None) -> tuple[torch.Tensor, CMSLevelState]:
        """z [B, T, D] -> (level(z) [B, T, D], new state). The level's memory is D x h: values D wide, keys h."""
        B, T, _ = z.shape
        if not ablation.test_time_updates:
            read = self.features(z) @ state.memory[:, 0].transpose(-1, -2)
            return z + read, state
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
                                  return_writes=trace is not None)
        if trace is not None:  # the level's write pairs, for the recorder's update events
            trace.update(keys=features[:, 0, :-1], values=values, writes=result.writes[:, 0],
                         learning_rate=eta[:, 0], retention=log_retention.exp())
        # The kernel's output is a fresh tensor no backward needs: the residual is added in place.
        # previous_input is copied: a view would keep the whole [B, T, D] input alive with the state.
        return result.output[:, 0].add_(z), CMSLevelState(result.memory, result.pending, z[:, -1].clone())


class ContinuumMemorySystem(nn.Module):
    def __init__(self, d_model: int, hidden: int, periods: tuple[int, ...]):
        super().__init__()
        self.periods = tuple(periods)
        self.levels = nn.ModuleList(CMSLevel(d_model, hidden, p) for p in periods)

    def init_state(self, batch_size: int) -> list[CMSLevelState]:
        return [level.init_state(batch_size) for level in self.levels]

    @shapes(x="B T D", returns=("B T D", None))  # each level checks its own state
    def forward(self, x: torch.Tensor, states: list[CMSLevelState], position: int, ablation: Ablation = Ablation(),
                trace: dict | None = None, trace_levels: bool = True) -> tuple[torch.Tensor, list[CMSLevelState]]:
        """``trace`` gets the chain's input and, with ``trace_levels``, each level's write pairs
        ("levels.{i}"). The input alone suffices to replay every level exactly from the initial states."""
        new_states = []
        if trace is not None:
            trace["input"] = x
        for i, (level, state) in enumerate(zip(self.levels, states)):
            if ablation.cms_level(i):
                level_trace = {} if trace is not None and trace_levels else None
                x, state = level(x, state, position, ablation, level_trace)
                if level_trace is not None:
                    trace[f"levels.{i}"] = level_trace
            new_states.append(state)
        return x, new_states
