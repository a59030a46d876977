"""Self-modifying projection memories (Hope eq 79-85).

In Hope the key, value and gate projections are memories themselves: small residual MLPs
``P(z) = z + W_out silu(W_in z / ||z||)`` whose weights are fast weights, updated in context by the same rule
as the main memory, each learning towards a target it generates itself: for key k_t and value v_t,
the target is ``vhat_t = P(v_t)`` and the objective ``1/2 ||P(k_t) - vhat_t||^2``.

Decisions (the paper leaves them open):
- Three memories (key, value, gate) are stacked on one axis so they run as one batched matmul.
- A static linear map (part of the memory module's input projection) feeds each of them; the fast
  MLP is the part that changes.
- Mini-batch semantics: inside a memory chunk the weights are frozen at the chunk start; at the
  chunk boundary ONE update applies the chunk's mean gradient times the mean learning rate and the
  geometric-mean retention (DGD: W <- retention * W - lr * grad). A chunk cut by the end of a call
  keeps its pending sums in the state, so streaming equals one long call.
- The fast MLP reads the unit-normalised input and learns at ``projection_learning_rate`` times the
  memory's learning rate, each token's step divided by 1 + the squared norm of its Jacobian
  (normalised LMS, see ``_step_norm``): the step can then never overshoot, whatever the input's scale.
- The gradient is written out by hand (no autograd inside the forward), so outer training
  differentiates through these writes like any other op.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..ops.common import last_axis_norm
from ..ops.shape_check import shapes
from ..state import PROJECTION_STATE_SHAPES, ProjectionMemoryState

N_PROJECTIONS = 3  # key, value, gate


def _silu_slope(pre: torch.Tensor) -> torch.Tensor:
    """silu'(pre), in the same differentiable ops with and without grad (bit-identical calls)."""
    sig = torch.sigmoid(pre)
    return sig * (1 + pre * (1 - sig))


# A fast weight's Frobenius norm is held within this multiple of its learned initial norm. The target
# P(v_t) moves with the weights it trains, so on a repeated phrase the fast weights can chase it for
# ever (seen here: x2 every ~1,000 tokens after 6,000, the main memory following through the values);
# on training-length prose they stay well inside the limit (docs/model.md).
NORM_LIMIT = 2.0


class ProjectionMemories(nn.Module):
    def __init__(self, d_model: int, hidden: int, init_std: float):
        super().__init__()
        # Learned initial fast weights (meta-learned by the outer optimiser).
        self.initial_in = nn.Parameter(torch.randn(N_PROJECTIONS, hidden, d_model) * d_model ** -0.5)
        self.initial_out = nn.Parameter(torch.randn(N_PROJECTIONS, d_model, hidden) * init_std)

    def norm_limits(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The largest Frobenius norm each fast weight may reach, [3, 1, 1] for W_in and W_out: a bound,
        not something to learn (detached)."""
        return tuple(NORM_LIMIT * w.detach().flatten(1).norm(dim=1)[:, None, None] for w in (self.initial_in, self.initial_out))

    @shapes(batch_size="B", returns=PROJECTION_STATE_SHAPES)
    def init_state(self, batch_size: int) -> ProjectionMemoryState:
        w_in = self.initial_in.unsqueeze(0).expand(batch_size, -1, -1, -1)
        w_out = self.initial_out.unsqueeze(0).expand(batch_size, -1, -1, -1)
        return ProjectionMemoryState(w_in, w_out, torch.zeros_like(w_in), torch.zeros_like(w_out),
                                     w_in.new_zeros(batch_size))

    @staticmethod
    def apply(state: ProjectionMemoryState, z: torch.Tensor, z_norm: torch.Tensor | None = None) -> torch.Tensor:
        """z [B, 3, n, D] -> P(z) [B, 3, n, D] with the (chunk-frozen) fast weights.

        ``z_norm`` [B, 3, n, 1] (= ``last_axis_norm(z)``) may be passed when already computed for a whole
        call. W_in z / ||z|| is formed by scaling the narrow product: no unit-vector copy of z.
        Batch and the three memories are folded into one axis: 3-D matmuls dispatch far cheaper."""
        z_norm = last_axis_norm(z) if z_norm is None else z_norm
        w_in, w_out = state.w_in.flatten(0, 1), state.w_out.flatten(0, 1)  # [3B, h, D], [3B, D, h]
        flat = z.flatten(0, 1)
        hidden = F.silu(torch.bmm(flat, w_in.transpose(1, 2)) / z_norm.flatten(0, 1))
        # the residual added in place to the matmul's fresh output (baddbmm would first copy the strided
        # input into yet another fresh buffer)
        return torch.bmm(hidden, w_out.transpose(1, 2)).add_(flat).view(z.shape)

    @staticmethod
    def gradients(state: ProjectionMemoryState, pairs: torch.Tensor,
                  learning_rate: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Gradients of sum_t lr_t / n_t 1/2||P(k_t) - P(v_t)||^2 w.r.t. (W_in, W_out), each [B, 3, ., .],
        with n_t = ``_step_norm`` (held fixed, per memory).

        pairs [B, 2, n, D]: the memory's own keys k_t then values v_t (a slice of ``apply``'s output,
        so no copy); learning_rate [B, n]. The target P(v_t) is held fixed in the inner gradient
        (outer training still sees it)."""
        B, _, n, D = pairs.shape
        h = state.w_in.shape[2]
        w_out = state.w_out.flatten(0, 1)  # [3B, D, h]
        pairs = pairs.reshape(B, 2 * n, D)  # keys then values: one pass for both
        norms = last_axis_norm(pairs)  # [B, 2n, 1]
        # The three memories share their inputs: one [2n, D] x [D, 3h] matmul instead of a broadcast copy.
        pre = torch.bmm(pairs, state.w_in.reshape(B, N_PROJECTIONS * h, D).transpose(1, 2)) / norms
        pre = pre.view(B, 2 * n, N_PROJECTIONS, h).transpose(1, 2).reshape(B * N_PROJECTIONS, 2 * n, h)
        hidden = F.silu(pre)
        keys, values = pairs[:, :n], pairs[:, n:]
        slope = _silu_slope(pre[:, :n])  # silu'(pre) at the keys: [3B, n, h]
        rate = learning_rate[:, None, :, None] / ProjectionMemories._step_norm(w_out, hidden[:, :n], slope).view(
            B, N_PROJECTIONS, n, 1)  # [B, 3, n, 1]
        # lr (P(k) - P(v)) = lr (k - v) + lr (silu(W_in k^) - silu(W_in v^)) W_out^T, for each memory: the
        # rate scales the narrow factors, and the shared term is added in place to the matmul's fresh
        # output (no broadcast copy of it, no extra pass over the [3B, n, D] product)
        weighted = torch.bmm((rate * (hidden[:, :n] - hidden[:, n:]).view(B, N_PROJECTIONS, n, h)).flatten(0, 1),
                             w_out.transpose(1, 2))  # [3B, n, D]
        weighted = weighted.view(B, N_PROJECTIONS, n, D).addcmul_(rate, (keys - values)[:, None]).flatten(0, 1)
        grad_out = torch.bmm(weighted.transpose(1, 2), hidden[:, :n]).view(B, N_PROJECTIONS, D, h)
        grad_pre = torch.bmm(weighted, w_out) * slope  # [3B, n, h]
        # d pre / d W_in = k^ = k / ||k||: the norm scales the narrow factor, the keys go in raw
        grad_pre = (grad_pre.view(B, N_PROJECTIONS, n, h) / norms[:, None, :n]).transpose(1, 2)
        grad_in = torch.bmm(grad_pre.reshape(B, n, N_PROJECTIONS * h).transpose(1, 2), keys)
        return grad_in.view(B, N_PROJECTIONS, h, D), grad_out

    @staticmethod
    def _step_norm(w_out: torch.Tensor, hidden: torch.Tensor, slope: torch.Tensor) -> torch.Tensor:
        """1 + a bound on ||J_t J_t^T|| per token and memory, [3B, n], J_t the Jacobian of P(k_t) w.r.t. the
        fast weights: J J^T = ||h_t||^2 I + W_out S_t^2 W_out^T with S_t = diag(silu'(pre_t)) (unit inputs),
        bounded by ||h_t||^2 + sum_j silu'(pre_tj)^2 ||W_out[:, j]||^2. Dividing token t's step by it
        (normalised LMS) moves P(k_t) by at most the rate times the error, as unit keys do for the main
        memory's delta rule: without it a step grows with ||k - v|| ||h||^2, and the fast weights diverged
        on ordinary text after a few thousand tokens."""
        column_norms = w_out.square().sum(1)  # [3B, h]
        return 1.0 + hidden.square().sum(-1) + torch.bmm(slope.square(), column_norms[:, :, None]).squeeze(-1)

    @staticmethod
    def accumulate(state: ProjectionMemoryState, pairs: torch.Tensor, learning_rate: torch.Tensor,
                   log_retention: torch.Tensor) -> ProjectionMemoryState:
        """Add a run of tokens' gradients (see ``gradients``) to the pending sums.

        learning_rate, log_retention [B, n]."""
        grad_in, grad_out = ProjectionMemories.gradients(state, pairs, learning_rate)
        return ProjectionMemoryState(state.w_in, state.w_out, state.pending_in + grad_in,
                                     state.pending_out + grad_out,
                                     state.pending_log_retention + log_retention.sum(-1))

    @staticmethod
    def apply_update(state: ProjectionMemoryState, chunk_size: int, limits=None) -> ProjectionMemoryState:
        """Chunk boundary: one DGD step with the chunk's mean gradient and geometric-mean retention.

        The pending sums already carry the 1/chunk_size of the mean (see the caller's learning rate)."""
        cleared = (torch.zeros_like(state.pending_in), torch.zeros_like(state.pending_out),
                   torch.zeros_like(state.pending_log_retention))
        return ProjectionMemories._descend(state, state.pending_log_retention / chunk_size, state.pending_in,
                                           state.pending_out, cleared, limits)

    @staticmethod
    def step(state: ProjectionMemoryState, pairs: torch.Tensor, learning_rate: torch.Tensor,
             log_retention: torch.Tensor, limits=None) -> ProjectionMemoryState:
        """A whole chunk at once: ``accumulate`` then ``apply_update`` from empty pending sums.

        The common case (every chunk of a call that starts on the clock), in fewer ops; the state's
        pending sums are empty on a chunk boundary, so they are passed on as they are."""
        grad_in, grad_out = ProjectionMemories.gradients(state, pairs, learning_rate)
        mean_log_retention = log_retention.sum(-1) * (1 / log_retention.shape[-1])
        return ProjectionMemories._descend(state, mean_log_retention, grad_in, grad_out,
                                           (state.pending_in, state.pending_out, state.pending_log_retention), limits)

    @staticmethod
    def _descend(state, mean_log_retention, grad_in, grad_out, pending, limits=None) -> ProjectionMemoryState:
        """W <- retention * W - grad (DGD) for both fast weights, each then held within its norm limit
        (``norm_limits``; None: unbounded); ``pending`` is the new state's pending sums."""
        retention = mean_log_retention.exp()[:, None, None, None]
        w_in, w_out = (retention * state.w_in).sub_(grad_in), (retention * state.w_out).sub_(grad_out)
        if limits is not None:
            w_in, w_out = _within(w_in, limits[0]), _within(w_out, limits[1])
        return ProjectionMemoryState(w_in, w_out, *pending)


def _within(weights: torch.Tensor, limit: torch.Tensor) -> torch.Tensor:
    """weights [B, 3, ., .] scaled down where a memory's Frobenius norm exceeds its limit [3, 1, 1]."""
    norms = weights.flatten(2).norm(dim=-1)[:, :, None, None]
    return weights * (limit / norms.clamp(min=1e-12)).clamp(max=1.0)
