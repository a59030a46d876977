"""SelfModifyingMemory: the test-time-learning memory of a Hope layer.

Per head, per token (B batch, H memory heads, T tokens, d head width, D = H d; values are d = dv wide,
keys and queries dk = key_expansion d wide, so M is dv x dk: 128 x 1,024 in the shipped model):
    q_t = phi(l2norm(W_q x_t))                            static query (the paper's ablation)
    k_t, v_t, g_t = P_k, P_v, P_g (static maps of x_t)    self-modifying projection memories
        with ``shifted_keys`` the key's input is token t-1's query features instead, k_t = P_k(W_q x_{t-1})
        (a learned initial query for a stream's first token): each write binds a context to its successor
        k_t = phi(l2norm(k_t)): phi = l2norm . DPFP with ``key_expansion`` > 1 (wider keys), else identity
    surprise_t      = ||v_t - M_{t-1} k_t||                  prediction error before the write
    learning_rate_t = max_lr * sigmoid(a(g_t) + w * gate_surprise_t)           bounded
        gate_surprise_t = ||v_t - M_c k_t|| / ||v_t||: the relative error (scale-free: about 1 for a
        value the memory has never seen, about 0 for one it holds), so w means the same for every head
    retention_t     = 1 - (1 - min_retention) * sigmoid(r(g_t))                 bounded in [min, 1]
    M_t = retention_t M_{t-1} + learning_rate_t (v_t - M_{t-1} k_t) k_t^T     (DGD, Hope eq 88)
    y_t = M_t q_t
With ``momentum`` the Titans update replaces the last line (see ``ops/momentum.py``), each step entering the
momentum times (1 - beta_t) with ``momentum_dampening`` (the default).
With ``memory_depth`` 2 the memory is the paper's MLP M(x) = x + W1 silu(W2 x) (eq 89; x the unit key or
query before its feature map), written by mini-batch gradient steps of rate learning_rate_t / chunk size
(``ops/deep_memory.py``, docs/deep-memory.md); surprise is still ||v_t - M_{t-1}(k_t)||.

Chunking (``memory_chunk_size``, aligned to the stream's token clock): the learning-rate gate sees
``gate_surprise_t = ||v_t - M_c k_t||`` against the memory M_c at the start of t's chunk, and the
projection memories are frozen inside a chunk. Everything else is exact per token, so the recorded
``surprise`` is the true per-token prediction error. With chunk size 1 the two surprises coincide.
"""
from __future__ import annotations

import math
from typing import NamedTuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..ablation import Ablation
from ..config import HopeConfig
from ..layers import CausalConv, RMSNorm
from ..ops import deep_memory_chunk, gated_delta_chunk, key_feature_map, l2norm, mlp_read, momentum_rule_chunk, reference_pass
from ..ops.common import cat_tokens, float32_kernel, last_axis_norm
from ..ops.shape_check import shapes
from ..state import MEMORY_STATE_SHAPES, MemoryState
from ..trace import MemoryTrace
from .projection_memory import ProjectionMemories

SURPRISE_EPS = 1e-2  # keeps the relative surprise finite for a head whose value is near zero


class Gate(NamedTuple):
    """One chunk's gates (N = B H folded heads, n tokens)."""
    reference_keys: torch.Tensor  # M_c k [N, n, d]: the chunk-start memory's prediction
    error: torch.Tensor  # ||v - M_c k|| [N, n]
    surprise: torch.Tensor  # the relative error the learning rate sees [N, n]
    logits: torch.Tensor  # every gate's logit [B, gates * H, n]
    learning_rate: torch.Tensor  # [B, H, n]
    log_retention: torch.Tensor  # [B, H, n]


class DeepWrite(NamedTuple):
    """memory_depth 2: one chunk's write factors besides the error (W1 += rho e a^T, W2 += rho d k^T)."""
    hidden: torch.Tensor  # a_t [N, n, d] at the chunk start's weights
    hidden_error: torch.Tensor  # d_t [N, n, d]
    rate: torch.Tensor  # rho_t [N, n]


class Write(NamedTuple):
    """One chunk's reads and writes, the same fields whatever rule wrote (or none)."""
    output: torch.Tensor  # M_t q_t [N, n, d]
    memory: torch.Tensor  # after the chunk [N, d, dk]
    momentum: torch.Tensor | None  # after the chunk (momentum configs)
    error: torch.Tensor | None  # v_t - M_{t-1} k_t [N, n, d]: when traced or with momentum (updates off: unwritten)
    surprise: torch.Tensor | None  # ||v_t - M_{t-1} k_t|| [N, n], when traced
    log_momentum_gate: torch.Tensor | None  # [B, H, n], momentum configs with momentum on
    deep: DeepWrite | None = None  # memory_depth 2, when traced
    step: torch.Tensor | None = None  # [N, n] the rate that entered the momentum, where damped (learning rate (1 - beta))
    hidden_momentum: torch.Tensor | None = None  # memory_depth 2 with momentum: W2's after the chunk


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
    """M x per head, heads folded: keys or queries [N, n, dk], memories [N, dv, dk] -> [N, n, dv]."""
    return torch.bmm(k, memory.transpose(1, 2))


class SelfModifyingMemory(nn.Module):
    def __init__(self, config: HopeConfig):
        super().__init__()
        self.config = config
        D, H, d = config.d_model, config.n_memory_heads, config.memory_head_dim
        self.n_heads, self.head_dim = H, d
        self.key_expansion = config.key_expansion  # 1: keys and queries as projected
        # Mini-batch momentum gets no error feedback inside a chunk: bounding each token's rate by 1/chunk
        # keeps a chunk's summed step <= max_learning_rate (with dampening, momentum's echoes included).
        self.max_learning_rate = config.max_learning_rate / (config.memory_chunk_size if config.momentum else 1)
        self.projection_rate = config.projection_learning_rate / config.memory_chunk_size
        self.log_retention_floor = math.log(config.min_retention)  # the retention gate's bound
        n_inputs = 4 if config.self_modifying else 3  # q, k, v (+ gate features)
        self.shifted_keys = config.shifted_keys  # keys are then the previous token's query features
        self.in_proj = nn.Linear(D, (n_inputs - self.shifted_keys) * D, bias=False)
        self.conv_channels = (2 if self.shifted_keys else 3) * D  # q(, k), v
        self.conv = CausalConv(self.conv_channels, config.local_conv) if config.local_conv > 1 else None
        self.projections = ProjectionMemories(D, config.projection_hidden, config.init_std) if config.self_modifying else None
        # Per-head gate logits from the gate features: learning rate, retention (, momentum).
        self.n_gates = 3 if config.momentum else 2
        self.gates = nn.Linear(D, self.n_gates * H)
        # >0: surprising tokens are written harder. Starts so that a novel value (relative error 1) gets
        # sigmoid(2) = 0.88 of the max rate and a held one (error 0) sigmoid(-2) = 0.12 (the lr bias below).
        self.surprise_weight = nn.Parameter(torch.full((H,), 4.0))
        self.deep = config.memory_depth > 1  # the MLP memory: initial_memory is then W1 [H, d, h = d]
        self.initial_memory = nn.Parameter(torch.zeros(H, d, d if self.deep else config.memory_key_dim))  # learned M_0
        if self.shifted_keys:  # the key of a stream's first token: a learned "start of text" context
            self.initial_query = nn.Parameter(torch.randn(D) * D ** -0.5)
        self.out_norm = RMSNorm(d)
        self.out_proj = nn.Linear(D, D, bias=False)
        nn.init.zeros_(self.gates.bias)
        nn.init.constant_(self.gates.bias[:H], -2.0)
        nn.init.constant_(self.gates.bias[H:2 * H], -3.0)  # retention starts near 1 - 0.05 (1 - min)
        if self.deep:  # W2: unit keys give its hidden units unit-variance inputs (silu's curved range)
            self.initial_hidden_memory = nn.Parameter(torch.randn(H, d, config.memory_key_dim))

    @shapes(batch_size="B", returns=MEMORY_STATE_SHAPES)
    def init_state(self, batch_size: int) -> MemoryState:
        memory = self.initial_memory.unsqueeze(0).expand(batch_size, -1, -1, -1)
        conv = None
        if self.conv is not None:
            conv = memory.new_zeros(batch_size, self.conv.width - 1, self.conv.weight.shape[0])
        hidden = self.initial_hidden_memory.unsqueeze(0).expand(batch_size, -1, -1, -1) if self.deep else None
        return MemoryState(
            memory=memory, reference=memory,
            momentum=torch.zeros_like(memory) if self.config.momentum else None,
            projections=self.projections.init_state(batch_size) if self.projections is not None else None,
            conv=conv,
            previous_query=self.initial_query.expand(batch_size, 1, -1) if self.shifted_keys else None,
            hidden_memory=hidden, hidden_reference=hidden,
            hidden_momentum=torch.zeros_like(hidden) if self.deep and self.config.momentum else None)

    def _heads(self, x: torch.Tensor) -> torch.Tensor:  # [B, n, D] -> [B, H, n, d]
        return x.view(x.shape[0], x.shape[1], self.n_heads, self.head_dim).transpose(1, 2)

    @shapes(x="B T D", state=MEMORY_STATE_SHAPES, returns=("B T D", MEMORY_STATE_SHAPES))
    def forward(self, x: torch.Tensor, state: MemoryState, position: int, ablation: Ablation = Ablation(),
                trace: bool = False) -> tuple[torch.Tensor, MemoryState, MemoryTrace | None]:
        """x [B, T, D] (normalised layer input) -> (y [B, T, D], new state, the per-token internals with
        ``trace``, else None).

        Inside the chunk loop batch and heads are folded into one axis (N = B H): every step is one
        3-D op with no reshapes per chunk (the loop is dispatch-bound). The state keeps [B, H, dv, dk]."""
        B, T, D = x.shape
        H, d = self.n_heads, self.head_dim
        inputs, conv_state, previous_query = self._input_features(x, state)
        runs = list(chunk_runs(position, T, self.config.memory_chunk_size))
        queries, chunk_inputs = self._chunks(x, inputs, [b - a for a, b, _ in runs])
        updates = ablation.test_time_updates
        memory = self._fold(state.memory)
        reference = memory if state.reference is state.memory else self._fold(state.reference)
        momentum = self._fold(state.momentum) if state.momentum is not None else None
        projections = state.projections
        limits = self.projections.norm_limits() if projections is not None else None
        hidden = hidden_reference = unit_queries = anchors = hidden_momentum = None
        if self.deep:  # W2 and its reference; the residual of a query is the unit query before phi
            anchors = (self.initial_memory.repeat(B, 1, 1), self.initial_hidden_memory.repeat(B, 1, 1))  # [N, ., .]
            hidden = self._fold(state.hidden_memory)
            hidden_reference = hidden if state.hidden_reference is state.hidden_memory else self._fold(state.hidden_reference)
            hidden_momentum = self._fold(state.hidden_momentum) if state.hidden_momentum is not None else None
            unit_queries = queries if self.key_expansion == 1 else self._fold(
                l2norm(self._heads(inputs[..., :D]))).split([b - a for a, b, _ in runs], dim=1)
        outputs, traces = [], []
        for i, ((a, b, on_boundary), qc, chunk_input) in enumerate(zip(runs, queries, chunk_inputs)):
            projected = ProjectionMemories.apply(projections, *chunk_input) if projections is not None else None
            keys_full, values_full, gate_features = projected.unbind(1) if projected is not None else chunk_input
            unit_keys = l2norm(self._heads(keys_full))  # [B, H, n, d]: phi's input, what a recording keeps
            k = self._fold(key_feature_map(unit_keys, self.key_expansion))  # [N, n, dk]
            v = self._fold(self._heads(values_full))  # [N, n, d]
            if self.deep:
                gate, write, hidden = self._deep_chunk(qc, unit_queries[i], unit_keys, k, v, gate_features, memory,
                                                       hidden, reference, hidden_reference, anchors, momentum,
                                                       hidden_momentum, ablation, trace)
                hidden_momentum = write.hidden_momentum
            else:
                gate = self._gate(k, v, reference, gate_features, ablation)
                write = self._write(qc, k, v, gate, memory, reference, momentum, ablation, trace)
            memory, momentum = write.memory, write.momentum
            if updates and projections is not None and ablation.self_modification:
                projections = self._step_projections(projections, projected, gate, limits, b - a, on_boundary)
            if updates and on_boundary:
                reference, hidden_reference = memory, hidden
            outputs.append(write.output)
            if trace:
                traces.append(self._trace_item(unit_keys, k, v, gate, write, updates))
        y = self.out_norm(cat_tokens(outputs, dim=1)).view(B, H, T, d).transpose(1, 2).reshape(B, T, D)
        new_memory = self._unfold(memory)
        new_reference = new_memory if reference is memory else self._unfold(reference)
        new_hidden = new_hidden_reference = None
        if self.deep:
            new_hidden = self._unfold(hidden)
            new_hidden_reference = new_hidden if hidden_reference is hidden else self._unfold(hidden_reference)
        unfold = lambda t: self._unfold(t) if t is not None else None
        new_state = MemoryState(new_memory, new_reference, unfold(momentum), projections, conv_state, previous_query,
                                new_hidden, new_hidden_reference, unfold(hidden_momentum))
        return self.out_proj(y), new_state, MemoryTrace.cat(traces) if trace else None

    def _key_features(self, x: torch.Tensor) -> torch.Tensor:
        """Keys (or queries) per head [..., d] -> [..., key width]."""
        return key_feature_map(l2norm(x), self.key_expansion)

    def _fold(self, t: torch.Tensor) -> torch.Tensor:  # [B, H, ...] -> [N, ...]
        return t.reshape(t.shape[0] * t.shape[1], *t.shape[2:])

    def _unfold(self, t: torch.Tensor) -> torch.Tensor:  # [N, ...] -> [B, H, ...]
        return t.view(t.shape[0] // self.n_heads, self.n_heads, *t.shape[1:])

    def _input_features(self, x: torch.Tensor, state: MemoryState):
        """The static projections of x, conv applied and keys shifted: [B, T, 3 D (q, k, v) + D (gate
        features, with projections)], with the new conv history and previous query."""
        D = x.shape[-1]
        inputs = self.in_proj(x)
        conv_state, previous_query = state.conv, state.previous_query
        if self.conv is not None:  # the gate features pass through, in the same buffer
            inputs, conv_state = self.conv(inputs, state.conv, passthrough=inputs.shape[-1] - self.conv_channels)
        if self.shifted_keys:  # [q, v(, g)] -> [q, k, v(, g)] with k_t = q_{t-1}
            query_features = inputs[..., :D]
            keys_input = torch.cat([previous_query, query_features[:, :-1]], dim=1)
            previous_query = query_features[:, -1:].clone()  # not a view: it would keep the whole call alive
            inputs = torch.cat([query_features, keys_input, inputs[..., D:]], dim=-1)
        return inputs, conv_state, previous_query

    def _chunks(self, x: torch.Tensor, inputs: torch.Tensor, sizes: list[int]):
        """Per chunk: unit queries [N, n, dk] (key features), and the inputs of the keys, values and gate features."""
        B, T, D = x.shape
        queries = self._fold(self._key_features(self._heads(inputs[..., :D]))).split(sizes, dim=1)
        if self.projections is not None:
            # [B, 3, T, D] without a copy: k, v and gate features lie side by side in one buffer, and
            # the batched matmuls take the strided view as it is.
            projection_inputs = inputs[..., D:].view(B, T, 3, D).transpose(1, 2)
            return queries, zip(projection_inputs.split(sizes, dim=2), last_axis_norm(projection_inputs).split(sizes, dim=2))
        # static keys and values; the gates read the layer input
        return queries, zip(inputs[..., D:2 * D].split(sizes, dim=1), inputs[..., 2 * D:].split(sizes, dim=1),
                            x.split(sizes, dim=1))

    def _gate(self, k, v, reference, gate_features, ablation: Ablation, reference_error=None) -> Gate:
        """The chunk's learning rates and retentions [B, H, n] from its gate features and its surprise
        against the chunk-start memory (``reference_error``: v - M_c(k), given by the deep memory)."""
        B, n = gate_features.shape[0], k.shape[1]
        reference_keys = None
        if reference_error is None:
            reference_keys = _predict(k, reference)
            reference_error = v - reference_keys
        error = torch.linalg.vector_norm(reference_error, dim=-1)  # [N, n]
        surprise = error / (torch.linalg.vector_norm(v, dim=-1) + SURPRISE_EPS)
        logits = self.gates(gate_features).transpose(1, 2)  # [B, gates * H, n]
        learning_rate, log_retention = self._rates(logits, surprise.view(B, self.n_heads, n), ablation)
        return Gate(reference_keys, error, surprise, logits, learning_rate, log_retention)

    def _write(self, qc, k, v, gate: Gate, memory, reference, momentum, ablation: Ablation, traced: bool) -> Write:
        """One chunk's reads and writes: output [N, n, d], the new memory (and momentum), the per-token
        errors and surprise (when traced) and the momentum gate."""
        H, config = self.n_heads, self.config
        if not ablation.test_time_updates:  # nothing is written: traced, the error the write would have used
            error = surprise = None
            if traced:
                error = v - (gate.reference_keys if reference is memory else _predict(k, memory))
                surprise = torch.linalg.vector_norm(error, dim=-1)
            return Write(_predict(qc, memory), memory, momentum, error, surprise, None)
        if config.momentum:
            log_gate, step = self._momentum_gate(gate, ablation)
            out = momentum_rule_chunk(*map(self._unfold, (qc, k, v)), gate.learning_rate if step is None else step,
                                      gate.log_retention, log_gate, *map(self._unfold, (memory, momentum, reference)))
            # with mini-batch gradients the error IS taken at the chunk-start memory
            return Write(self._fold(out.output), self._fold(out.memory), self._fold(out.momentum),
                         self._fold(out.error), gate.error, log_gate, step=None if step is None else self._fold(step))
        # One chunk; inside an aligned chunk the gate's reference IS the start memory: reuse M k.
        floor = self.log_retention_floor if ablation.retention else 0.0
        out = gated_delta_chunk(qc, k, v, self._fold(gate.learning_rate), self._fold(gate.log_retention), memory,
                                gate.reference_keys if reference is memory else None,
                                return_error=traced, log_retention_floor=floor)
        surprise = torch.linalg.vector_norm(out.error, dim=-1) if traced else None
        return Write(out.output, out.memory, momentum, out.error, surprise, None)

    def _momentum_gate(self, gate: Gate, ablation: Ablation) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """log beta_t [B, H, n] (None with momentum switched off: beta = 0) and, where damped, the rate that
        enters the momentum, learning_rate_t (1 - beta_t) (None: the learning rate itself)."""
        if not ablation.momentum:
            return None, None
        log_gate = math.log(self.config.max_momentum) + F.logsigmoid(gate.logits[:, 2 * self.n_heads:])
        if not self.config.momentum_dampening:
            return log_gate, None
        return log_gate, gate.learning_rate * -torch.expm1(log_gate)

    def _deep_chunk(self, qc, unit_queries, unit_keys, k, v, gate_features, memory, hidden, reference,
                    hidden_reference, anchors, momentum, hidden_momentum, ablation: Ablation,
                    traced: bool) -> tuple[Gate, Write, torch.Tensor]:
        """memory_depth 2: one chunk's gate, reads and writes of M(x) = x + W1 silu(W2 x) (memory = W1,
        hidden = W2). The residual x is the unit key (query) before phi; the kernel fits the rest, v - x.
        Each token's step is its learning rate / chunk size: with no error feedback inside a chunk (all
        gradients at the chunk start), a chunk's summed step then stays within max_learning_rate.
        Retention pulls the weights toward the learned initial ones (``anchors``): zero weights are dead.
        With momentum (``momentum``, ``hidden_momentum``: W1's and W2's) the steps go through it, as for the
        linear memory; the gate's maximum is then already per chunk."""
        target = v - self._fold(unit_keys)
        at_reference = reference_pass(k, target, reference, hidden_reference)
        gate = self._gate(k, v, reference, gate_features, ablation, reference_error=at_reference.error)
        if not ablation.test_time_updates:  # nothing is written: traced, the error against the unchanging weights
            error = at_reference.error if reference is memory else target - mlp_read(k, memory, hidden)
            surprise = deep = None
            if traced:
                surprise = torch.linalg.vector_norm(error, dim=-1)
                hidden_keys = at_reference.hidden if reference is memory else F.silu(torch.bmm(k, hidden.transpose(1, 2)))
                deep = DeepWrite(hidden_keys, torch.zeros_like(hidden_keys), torch.zeros_like(error[..., 0]))
            return gate, Write(mlp_read(qc, memory, hidden) + unit_queries, memory, momentum, error if traced else None,
                               surprise, None, deep, hidden_momentum=hidden_momentum), hidden
        log_gate = step = None
        if self.config.momentum:
            log_gate, step = self._momentum_gate(gate, ablation)
            rate = self._fold(gate.learning_rate if step is None else step)
        else:
            rate = self._fold(gate.learning_rate) * (1 / self.config.memory_chunk_size)
        out = deep_memory_chunk(qc, k, target, rate, self._fold(gate.log_retention), memory, hidden, reference,
                                hidden_reference, at_reference, *anchors, return_error=traced, m1=momentum,
                                m2=hidden_momentum, log_momentum_gate=None if log_gate is None else self._fold(log_gate))
        written = dict(momentum=out.m1, log_momentum_gate=log_gate, hidden_momentum=out.m2)
        if not traced:
            return gate, Write(out.output + unit_queries, out.w1, error=None, surprise=None, **written), out.w2
        # surprise: the error before the write; the trace's error: the one the write used (at the chunk start)
        surprise = torch.linalg.vector_norm(out.error, dim=-1)
        deep = DeepWrite(at_reference.hidden, out.back, out.rate)
        return gate, Write(out.output + unit_queries, out.w1, error=at_reference.error, surprise=surprise, deep=deep,
                           **written), out.w2

    def _step_projections(self, projections, projected, gate: Gate, limits, n: int, on_boundary: bool):
        """The projection memories' mini-batch step: the mean over the chunk's tokens of lr_t * grad_t
        (each token adds lr_t / chunk_size), applied at the chunk boundary."""
        H, chunk = self.n_heads, self.config.memory_chunk_size
        # sums times constants: torch.mean is two ops behind a Python wrapper
        rate = gate.learning_rate.sum(1) * (self.projection_rate / H)
        log_retention = gate.log_retention.sum(1) * (1 / H)
        pairs = projected.narrow(1, 0, 2)  # the memory's own keys and values
        if n == chunk:  # a whole chunk: nothing pending before it
            return ProjectionMemories.step(projections, pairs, rate, log_retention, limits)
        projections = ProjectionMemories.accumulate(projections, pairs, rate, log_retention)
        return ProjectionMemories.apply_update(projections, chunk, limits) if on_boundary else projections

    def _trace_item(self, unit_keys, k, v, gate: Gate, write: Write, updates: bool) -> MemoryTrace:
        """One chunk's trace, [B, H, n(, d)]: the rates actually applied (with updates off nothing is
        written and nothing decays)."""
        learning_rate = gate.learning_rate
        momentum_gate = None
        if updates and self.config.momentum:
            log_gate = write.log_momentum_gate
            momentum_gate = log_gate.exp() if log_gate is not None else torch.zeros_like(learning_rate)
        return MemoryTrace(
            surprise=self._unfold(write.surprise), gate_surprise=self._unfold(gate.surprise),
            learning_rate=learning_rate if updates else torch.zeros_like(learning_rate),
            retention=gate.log_retention.exp() if updates else torch.ones_like(learning_rate),
            unit_keys=unit_keys, keys=self._unfold(k), values=self._unfold(v),
            errors=self._unfold(write.error) if write.error is not None else torch.zeros_like(self._unfold(v)),
            momentum_gate=momentum_gate, **({} if write.step is None else dict(write_rate=self._unfold(write.step))),
            **({} if write.deep is None else dict(hidden=self._unfold(write.deep.hidden),
                                                  hidden_errors=self._unfold(write.deep.hidden_error),
                                                  write_rate=self._unfold(write.deep.rate))))

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
