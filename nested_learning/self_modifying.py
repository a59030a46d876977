"""SelfModifyingMemory: the test-time-learning memory of a Hope layer.

Per head, per token (B batch, H heads, T tokens, d head width, D = H d):
    q_t = l2norm(W_q x_t)                                 static query (the paper's ablation)
    k_t, v_t, g_t = P_k, P_v, P_g (static maps of x_t)    self-modifying projection memories
    surprise_t      = ||v_t - M_{t-1} k_t||                  prediction error before the write
    learning_rate_t = max_lr * sigmoid(a(g_t) + w * gate_surprise_t)           bounded
        gate_surprise_t = ||v_t - M_c k_t|| / ||v_t||: the relative error (scale-free: about 1 for a
        value the memory has never seen, about 0 for one it holds), so w means the same for every head
    retention_t     = 1 - (1 - min_retention) * sigmoid(r(g_t))                 bounded in [min, 1]
    M_t = retention_t M_{t-1} + learning_rate_t (v_t - M_{t-1} k_t) k_t^T     (DGD, Hope eq 88)
    y_t = M_t q_t
With ``momentum`` the Titans update replaces the last line (see ``ops/momentum.py``).

Chunking (``memory_chunk_size``, aligned to the stream's token clock): the learning-rate gate sees
``gate_surprise_t = ||v_t - M_c k_t||`` against the memory M_c at the start of t's chunk, and the
projection memories are frozen inside a chunk. Everything else is exact per token, so the recorded
``surprise`` is the true per-token prediction error. With chunk size 1 the two surprises coincide.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from .ablation import Ablation
from .config import HopeConfig
from .layers import CausalConv, RMSNorm
from .ops import gated_delta_chunk, l2norm, momentum_rule_chunk
from .ops.common import cat_tokens, float32_kernel, last_axis_norm
from .projection_memory import ProjectionMemories
from .state import MemoryState

SURPRISE_EPS = 1e-2  # keeps the relative surprise finite for a head whose value is near zero


def chunk_runs(position: int, length: int, chunk: int):
    """Split tokens [0, length) starting at stream ``position`` at multiples of ``chunk``.

    Yields (start, end, ends_on_boundary)."""
    a = 0
    while a < length:
        b = min(length, (((position + a) // chunk) + 1) * chunk - position)
        yield a, b, (position + b) % chunk == 0
        a = b


@float32_kernel  # M k feeds the delta rule's kernel (memory_keys): it must not be rounded to bf16 first
def _predict(k, memory):
    """M x per head, heads folded: keys or queries [N, n, d], memories [N, d, d] -> [N, n, d]."""
    return torch.bmm(k, memory.transpose(1, 2))


class SelfModifyingMemory(nn.Module):
    def __init__(self, config: HopeConfig):
        super().__init__()
        self.config = config
        D, H, d = config.d_model, config.n_heads, config.head_dim
        self.n_heads, self.head_dim = H, d
        # Mini-batch momentum gets no error feedback inside a chunk: bounding each token's rate by
        # 1/chunk keeps a chunk's summed step <= max_learning_rate, which heavy-ball momentum tolerates.
        self.max_learning_rate = config.max_learning_rate / (config.memory_chunk_size if config.momentum else 1)
        self.projection_rate = config.projection_learning_rate / config.memory_chunk_size
        self.log_retention_floor = math.log(config.min_retention)  # the retention gate's bound
        n_inputs = 4 if config.self_modifying else 3  # q, k, v (+ gate features)
        self.in_proj = nn.Linear(D, n_inputs * D, bias=False)
        self.conv = CausalConv(3 * D, config.local_conv) if config.local_conv > 1 else None
        self.projections = ProjectionMemories(D, config.projection_hidden, config.init_std) if config.self_modifying else None
        # Per-head gate logits from the gate features: learning rate, retention (, momentum).
        self.n_gates = 3 if config.momentum else 2
        self.gates = nn.Linear(D, self.n_gates * H)
        # >0: surprising tokens are written harder. Starts so that a novel value (relative error 1) gets
        # sigmoid(2) = 0.88 of the max rate and a held one (error 0) sigmoid(-2) = 0.12 (the lr bias below).
        self.surprise_weight = nn.Parameter(torch.full((H,), 4.0))
        self.initial_memory = nn.Parameter(torch.zeros(H, d, d))  # learned M_0
        self.out_norm = RMSNorm(d)
        self.out_proj = nn.Linear(D, D, bias=False)
        nn.init.zeros_(self.gates.bias)
        nn.init.constant_(self.gates.bias[:H], -2.0)
        nn.init.constant_(self.gates.bias[H:2 * H], -3.0)  # retention starts near 1 - 0.05 (1 - min)

    def init_state(self, batch_size: int) -> MemoryState:
        memory = self.initial_memory.unsqueeze(0).expand(batch_size, -1, -1, -1)
        conv = None
        if self.conv is not None:
            conv = memory.new_zeros(batch_size, self.conv.width - 1, self.conv.weight.shape[0])
        return MemoryState(
            memory=memory, reference=memory,
            momentum=torch.zeros_like(memory) if self.config.momentum else None,
            projections=self.projections.init_state(batch_size) if self.projections is not None else None,
            conv=conv)

    def _heads(self, x: torch.Tensor) -> torch.Tensor:  # [B, n, D] -> [B, H, n, d]
        return x.view(x.shape[0], x.shape[1], self.n_heads, self.head_dim).transpose(1, 2)

    def forward(self, x: torch.Tensor, state: MemoryState, position: int, ablation: Ablation = Ablation(),
                trace: dict | None = None) -> tuple[torch.Tensor, MemoryState]:
        """x [B, T, D] (normalised layer input) -> (y [B, T, D], new state).

        Inside the chunk loop batch and heads are folded into one axis (N = B H): every step is one
        3-D op with no reshapes per chunk (the loop is dispatch-bound). The state keeps [B, H, d, d]."""
        config = self.config
        B, T, D = x.shape
        H, d = self.n_heads, self.head_dim
        fold = lambda t: t.reshape(B * H, *t.shape[2:])  # [B, H, ...] -> [N, ...]
        unfold = lambda t: t.view(B, H, *t.shape[1:])
        inputs = self.in_proj(x)  # [B, T, 3 D (q, k, v) + D (gate features, with projections)]
        conv_state = state.conv
        if self.conv is not None:  # the gate features pass through, in the same buffer
            inputs, conv_state = self.conv(inputs, state.conv, passthrough=inputs.shape[-1] - 3 * D)
        runs = list(chunk_runs(position, T, config.memory_chunk_size))
        sizes = [b - a for a, b, _ in runs]
        queries = fold(l2norm(self._heads(inputs[..., :D]))).split(sizes, dim=1)  # [N, n, d] per chunk
        if self.projections is not None:
            # [B, 3, T, D] without a copy: k, v and gate features lie side by side in one buffer, and
            # the batched matmuls take the strided view as it is.
            projection_inputs = inputs[..., D:].view(B, T, 3, D).transpose(1, 2)
            chunk_inputs = zip(projection_inputs.split(sizes, dim=2),
                               last_axis_norm(projection_inputs).split(sizes, dim=2))
        else:  # static keys and values; the gates read the layer input
            chunk_inputs = zip(inputs[..., D:2 * D].split(sizes, dim=1), inputs[..., 2 * D:].split(sizes, dim=1),
                               x.split(sizes, dim=1))
        updates = ablation.test_time_updates
        floor = self.log_retention_floor if ablation.retention else 0.0
        memory = fold(state.memory)
        reference = memory if state.reference is state.memory else fold(state.reference)
        momentum = fold(state.momentum) if state.momentum is not None else None
        projections = state.projections
        limits = self.projections.norm_limits() if projections is not None else None
        outputs, traces = [], []
        for (a, b, on_boundary), qc, chunk_input in zip(runs, queries, chunk_inputs):
            n = b - a
            if projections is not None:
                projected = ProjectionMemories.apply(projections, *chunk_input)  # [B, 3, n, D]
                keys_full, values_full, gate_features = projected.unbind(1)
            else:
                keys_full, values_full, gate_features = chunk_input
            k, v = fold(l2norm(self._heads(keys_full))), fold(self._heads(values_full))  # [N, n, d]
            reference_keys = _predict(k, reference)
            gate_error = torch.linalg.vector_norm(v - reference_keys, dim=-1)  # [N, n]
            gate_surprise = gate_error / (torch.linalg.vector_norm(v, dim=-1) + SURPRISE_EPS)
            gate_logits = self.gates(gate_features).transpose(1, 2)  # [B, gates * H, n]
            learning_rate, log_retention = self._rates(gate_logits, gate_surprise.view(B, H, n), ablation)
            if not updates:
                out = _predict(qc, memory)
                surprise = (gate_error if reference is memory
                            else torch.linalg.vector_norm(v - _predict(k, memory), dim=-1))
            elif config.momentum:
                log_gate = None
                if ablation.momentum:
                    log_gate = math.log(config.max_momentum) + F.logsigmoid(gate_logits[:, 2 * H:])
                result = momentum_rule_chunk(unfold(qc), unfold(k), unfold(v), learning_rate, log_retention, log_gate,
                                             unfold(memory), unfold(momentum), unfold(reference))
                out, memory, momentum = fold(result.output), fold(result.memory), fold(result.momentum)
                chunk_error = fold(result.error)
                surprise = gate_error  # with mini-batch gradients the error IS taken at the chunk-start memory
            else:
                # One chunk; inside an aligned chunk the gate's reference IS the start memory: reuse M k.
                result = gated_delta_chunk(qc, k, v, fold(learning_rate), fold(log_retention), memory,
                                           reference_keys if reference is memory else None,
                                           return_error=trace is not None, log_retention_floor=floor)
                out, memory, chunk_error = result.output, result.memory, result.error
                surprise = torch.linalg.vector_norm(chunk_error, dim=-1) if trace is not None else None
            if updates and projections is not None and ablation.self_modification:
                # Mean over the chunk's tokens of lr_t * grad_t: each token adds lr_t / chunk_size.
                # (sums times constants: torch.mean is two ops behind a Python wrapper)
                rate = learning_rate.sum(1) * (self.projection_rate / H)
                pair_log_retention = log_retention.sum(1) * (1 / H)
                pairs = projected.narrow(1, 0, 2)  # the memory's own keys and values
                if n == config.memory_chunk_size:  # a whole chunk: nothing pending before it
                    projections = ProjectionMemories.step(projections, pairs, rate, pair_log_retention, limits)
                else:
                    projections = ProjectionMemories.accumulate(projections, pairs, rate, pair_log_retention)
                    if on_boundary:
                        projections = ProjectionMemories.apply_update(projections, config.memory_chunk_size, limits)
            if updates and on_boundary:
                reference = memory
            outputs.append(out)
            if trace is not None:  # everything the recorder needs to rebuild M_t exactly, [B, H, n(, d)]
                # The rates actually applied: with updates off nothing is written and nothing decays.
                applied_lr = learning_rate if updates else torch.zeros_like(learning_rate)
                applied_retention = log_retention.exp() if updates else torch.ones_like(learning_rate)
                error = unfold(chunk_error) if updates else torch.zeros_like(unfold(v))
                item = dict(surprise=unfold(surprise), gate_surprise=unfold(gate_surprise), learning_rate=applied_lr,
                            retention=applied_retention, keys=unfold(k), values=unfold(v), errors=error)
                if updates and config.momentum:
                    item["momentum_gate"] = log_gate.exp() if log_gate is not None else torch.zeros_like(learning_rate)
                traces.append(item)
        y = self.out_norm(cat_tokens(outputs, dim=1)).view(B, H, T, d).transpose(1, 2).reshape(B, T, D)
        if trace is not None:  # [B, H, T(, d)] each
            trace.update({name: cat_tokens([t[name] for t in traces]) for name in traces[0]})
        new_memory = unfold(memory)
        new_reference = new_memory if reference is memory else unfold(reference)
        new_state = MemoryState(new_memory, new_reference, unfold(momentum) if momentum is not None else None,
                                projections, conv_state)
        return self.out_proj(y), new_state

    def _rates(self, gate_logits, gate_surprise, ablation: Ablation) -> tuple[torch.Tensor, torch.Tensor]:
        """Learning rate in (0, max] and log retention (retention in [min, 1]), each [B, H, n]."""
        H = self.n_heads
        lr_logits = gate_logits[:, :H]
        if not ablation.adaptive_lr:  # the learned constant: blind to the token and its surprise
            lr_logits = self.gates.bias[:H, None].expand_as(gate_surprise)
        else:
            lr_logits = torch.addcmul(lr_logits, self.surprise_weight[:, None], gate_surprise)
        learning_rate = torch.sigmoid(lr_logits) * self.max_learning_rate
        if not ablation.retention:
            return learning_rate, torch.zeros_like(learning_rate)
        forget = torch.sigmoid(gate_logits[:, H:2 * H]) * -(1 - self.config.min_retention)
        return learning_rate, torch.log1p(forget)
