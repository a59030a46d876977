"""DeltaRuleMemory: a multi-head gated delta-rule memory with static projections.

    q_t, k_t = l2norm(W_q x_t), l2norm(W_k x_t);  v_t = W_v x_t
    learning_rate_t = max_lr * sigmoid(w_lr . x_t),  retention_t in [min_retention, 1] from x_t
    M_t = retention_t M_{t-1} + learning_rate_t (v_t - M_{t-1} k_t) k_t^T;   y_t = W_o (M_t q_t)

Keys and values are one head wide here (d = D / H), so each head's M is d x d (values x keys, as in
``ops``). The kernel the model runs (``ops.gated_delta_chunk``, looped over chunks by
``ops.gated_delta_rule``) computes it; ``use_reference=True`` runs the per-token oracle loop instead
(same result, kept for tests and the benchmark).

Why it is kept (decision, issue 30): it is the model's memory layer with everything Hope adds taken
away: the Gated DeltaNet-style layer in a few lines, the public standalone layer, and the reference the
model's memory is tested against: :class:`SelfModifyingMemory` with static projections, no surprise
term in its gate, no momentum, conv, shifted or widened keys writes exactly the memory this layer writes
(tests/ops/test_ops.py). No preset builds on it: every preset's memory is SelfModifyingMemory switched by
HopeConfig (the ``titans`` preset's is the static-projection one with momentum and the surprise gate,
which this layer lacks), so a preset on DeltaRuleMemory would duplicate a config switch and its
checkpoints' parameter names.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from ..ops import gated_delta_rule, gated_delta_rule_reference, l2norm
from ..ops.gated_delta import DEFAULT_CHUNK
from ..ops.shape_check import shapes


class DeltaRuleMemory(nn.Module):
    def __init__(self, d_model: int, n_heads: int = 4, max_learning_rate: float = 1.0, min_retention: float = 0.9,
                 chunk_size: int = DEFAULT_CHUNK):
        super().__init__()
        if d_model % n_heads:
            raise ValueError(f"d_model ({d_model}) must be divisible by n_heads ({n_heads})")
        self.n_heads, self.head_dim, self.chunk_size = n_heads, d_model // n_heads, chunk_size
        self.max_learning_rate, self.min_retention = max_learning_rate, min_retention
        self.qkv = nn.Linear(d_model, 3 * d_model, bias=False)
        self.gates = nn.Linear(d_model, 2 * n_heads)  # learning-rate and retention logits per head
        self.out = nn.Linear(d_model, d_model, bias=False)
        self.initial_memory = nn.Parameter(torch.zeros(n_heads, self.head_dim, self.head_dim))
        nn.init.constant_(self.gates.bias[n_heads:], -3.0)

    @shapes(batch_size="B", returns="B H dv dk")
    def init_state(self, batch_size: int) -> torch.Tensor:
        return self.initial_memory.unsqueeze(0).expand(batch_size, -1, -1, -1)

    @shapes(x="B T D", memory="B H dv dk", returns=("B T D", "B H dv dk", "B H T"))
    def forward(self, x: torch.Tensor, memory: torch.Tensor | None = None, use_reference: bool = False,
                return_surprise: bool = False):
        """x [B, T, D] -> (y [B, T, D], memory [B, H, dv, dk], dv = dk = D / H) (+ surprise [B, H, T] if asked)."""
        B, T, D = x.shape
        memory = self.init_state(B) if memory is None else memory
        heads = lambda t: t.view(B, T, self.n_heads, self.head_dim).transpose(1, 2)
        q, k, v = (heads(t) for t in self.qkv(x).split(D, dim=-1))
        q, k = l2norm(q), l2norm(k)
        lr_logit, retention_logit = self.gates(x).transpose(1, 2).split(self.n_heads, dim=1)
        learning_rate = self.max_learning_rate * torch.sigmoid(lr_logit)
        log_retention = torch.log1p(-(1 - self.min_retention) * torch.sigmoid(retention_logit))
        if use_reference:
            result = gated_delta_rule_reference(q, k, v, learning_rate, log_retention, memory)
        else:
            result = gated_delta_rule(q, k, v, learning_rate, log_retention, memory, self.chunk_size,
                                      return_error=return_surprise)  # errors cost two more matmuls per chunk
        y = self.out(result.output.transpose(1, 2).reshape(B, T, D))
        if return_surprise:
            return y, result.memory, torch.linalg.vector_norm(result.error, dim=-1)
        return y, result.memory
