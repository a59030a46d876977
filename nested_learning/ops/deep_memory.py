"""Deep memory (Hope eq 89, Titans' deep memory): a 2-layer MLP whose weights are the fast state.

Per head, the memory maps a key x [dk] to a value [dv] through a hidden layer of width h:

    M(x) = r(x) + W1 silu(W2 x)          W1 [dv, h], W2 [h, dk]: both fast weights

``r(x)`` is the residual (the paper's M(x) = x + W1 s(W2 x)). It holds no weights, so it is the
caller's: the kernel works on the MLP part and takes the target ``v - r(k)`` (see
``memories/self_modifying.py``, which passes the unit key before its feature map).

Write rule: one step on the associative loss l_t = 1/2 ||M(k_t) - v_t||^2 (the linear memory's delta
rule is the same step for M(x) = M x), with Titans' mini-batch semantics: every token's gradient is
taken at the reference weights (W1r, W2r): the weights at the start of its chunk on the stream's clock:

    z_t = W2r k_t,  a_t = silu(z_t),  e_t = v_t - W1r a_t           (e_t: error at the reference)
    d_t = silu'(z_t) * (W1r^T e_t)                                  (minus dl/dz)
    -dl/dW1 = e_t a_t^T,   -dl/dW2 = d_t k_t^T
    rho_t = eta_t / max(1, ||a_t||^2 + ||k_t||^2 sum_j silu'(z_tj)^2 ||W1r[:, j]||^2)
    W_t = A + alpha_t (W_{t-1} - A) + rho_t (-dl/dW)      for W = W1, W2      (retention alpha_t)
    out_t = W1_t silu(W2_t q_t)                                     (read after the write)

Retention pulls the weights toward an anchor A, the memory's learned initial weights (A = 0 gives
eq 88's alpha_t W_{t-1}). Zero weights are a dead point of the MLP (silu(0) = 0: every gradient then
vanishes), and decay toward zero reached it: on random input W2 shrank from norm 362 to 0.02 in 2,048 tokens
at the default gates and the memory never wrote again (docs/deep-memory.md).

rho_t divides the step by a bound on ||J J^T|| (J the Jacobian of M(k_t) w.r.t. both weights), when it
exceeds 1: the step then moves M(k_t) by at most eta_t times its error, as a unit key does for the
linear delta rule (whose bound is exactly 1, so small weights take the plain gradient step). Without it a
step grows with ||a||^2 and ||W1||^2 (the value scale), and the weights diverge.

Chunk form. With c_t = sum_{i<=t} log alpha_i inside the run and D_ts = e^{c_t - c_s} (s <= t), every
state in the chunk is the start state plus rank-1 terms, W_t = e^{c_t} W_0 + sum_{s<=t} D_ts rho_s (.),
(with an anchor, W_t - A takes the place of W_t), so a whole chunk's reads are a few matmuls:

    W2_t q_t = e^{c_t} W2_0 q_t + (1 - e^{c_t}) A2 q_t + sum_s D_ts rho_s (k_s . q_t) d_s
    W1_t b_t = e^{c_t} W1_0 b_t + (1 - e^{c_t}) A1 b_t + sum_s D_ts rho_s (a_s . b_t) e_s   b_t = silu(W2_t q_t)

and the error before each write (the surprise) is the same at t - 1 (s < t). W_0 (the run's start) and the
reference differ only for a chunk cut by the end of a call.

Momentum (Titans, optional, as ``ops/momentum.py`` for the linear memory): each matrix has a momentum S,

    S_t = beta_t S_{t-1} + rho_t (-dl/dW),     W_t = A + alpha_t (W_{t-1} - A) + S_t

and with b_t = sum_{i<=t} log beta_i the chunk form keeps its shape: D_ts becomes
sum_{r=s..t} e^{c_t - c_r} e^{b_r - b_s} (one matmul of the two decay matrices) and W_t gains
(sum_{r<=t} e^{c_t - c_r} e^{b_r}) S_0, the start momentum carried in. (The module's damping, rho_t (1 - beta_t),
comes in through eta: the kernel takes the rate as given.)
Shapes (batch and heads folded into N): q, k [N, C, dk]; v [N, C, dv]; eta, log_retention [N, C];
w1 [N, dv, h]; w2 [N, h, dk]. Cost per token: about 3 h dk + 4 h dv + C (dk + 2 h + dv) multiply-adds,
against 3 dv dk + C (2 dk + dv) for the linear memory's chunk (docs/deep-memory.md).
"""
from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F

from .common import float32_kernel


class ReferencePass(NamedTuple):
    """The memory at the reference weights on a chunk's keys: what the gradients (and the learning-rate
    gate's surprise) are taken from."""
    pre: torch.Tensor  # [N, C, h] z = W2r k
    hidden: torch.Tensor  # [N, C, h] a = silu(z)
    error: torch.Tensor  # [N, C, dv] e = target - W1r a


class DeepMemoryResult(NamedTuple):
    output: torch.Tensor  # [N, C, dv] W1_t silu(W2_t q_t), the MLP part of M_t(q_t)
    error: torch.Tensor | None  # [N, C, dv] target_t - MLP_{t-1}(k_t): the error before the write
    w1: torch.Tensor  # [N, dv, h] after the chunk
    w2: torch.Tensor  # [N, h, dk]
    back: torch.Tensor  # [N, C, h] d_t: W2's write direction (W1's is the reference error e_t)
    rate: torch.Tensor  # [N, C] rho_t: the step each token took (what a recording replays the writes with)
    m1: torch.Tensor | None = None  # [N, dv, h] W1's momentum after the chunk (momentum only)
    m2: torch.Tensor | None = None  # [N, h, dk] W2's


def silu_slope(pre: torch.Tensor) -> torch.Tensor:
    """silu'(pre) = s (1 + pre (1 - s)), s = sigmoid(pre)."""
    s = torch.sigmoid(pre)
    return s * (1 + pre * (1 - s))


@float32_kernel
def mlp_read(x: torch.Tensor, w1: torch.Tensor, w2: torch.Tensor) -> torch.Tensor:
    """W1 silu(W2 x): x [N, n, dk], w1 [N, dv, h], w2 [N, h, dk] -> [N, n, dv]."""
    return torch.bmm(F.silu(torch.bmm(x, w2.transpose(1, 2))), w1.transpose(1, 2))


@float32_kernel
def reference_pass(k: torch.Tensor, target: torch.Tensor, w1: torch.Tensor, w2: torch.Tensor) -> ReferencePass:
    """The MLP at (w1, w2) on keys k [N, C, dk] against target [N, C, dv]."""
    pre = torch.bmm(k, w2.transpose(1, 2))
    hidden = F.silu(pre)
    return ReferencePass(pre, hidden, torch.baddbmm(target, hidden, w1.transpose(1, 2), alpha=-1))


@float32_kernel
def deep_memory_chunk(q, k, v, eta, log_retention, w1, w2, w1_reference=None, w2_reference=None,
                      reference: ReferencePass | None = None, w1_anchor=None, w2_anchor=None,
                      return_error: bool = False, m1=None, m2=None, log_momentum_gate=None) -> DeepMemoryResult:
    """One chunk of the deep memory (module docstring): v is the target (value minus residual).

    ``w1_reference`` / ``w2_reference``: the weights the gradients are taken at (None: the start weights
    w1, w2, the case of a chunk that starts on the clock). ``reference``: their :func:`reference_pass` on
    k, when the caller already has it (the learning-rate gate needs its error first).
    ``w1_anchor`` / ``w2_anchor`` (same shapes as w1, w2): where retention pulls the weights; None: zero.
    ``m1`` / ``m2`` (same shapes as w1, w2): the momenta at the start, for a memory with momentum;
    ``log_momentum_gate`` [N, C] is then log beta_t (None: beta = 0, each step only its own gradient)."""
    w1_reference = w1 if w1_reference is None else w1_reference
    w2_reference = w2 if w2_reference is None else w2_reference
    if reference is None:
        reference = reference_pass(k, v, w1_reference, w2_reference)
    pre, hidden, error = reference
    slope = silu_slope(pre)
    back = torch.bmm(error, w1_reference) * slope  # d_t = silu'(z_t) * W1r^T e_t  [N, C, h]
    column_norms = w1_reference.square().sum(1)  # ||W1r[:, j]||^2  [N, h]
    curvature = hidden.square().sum(-1) + torch.bmm(slope.square(), column_norms[:, :, None]).squeeze(-1) \
        * k.square().sum(-1)
    rate = eta / curvature.clamp_min(1.0)  # rho_t [N, C]

    cum = log_retention.cumsum(-1)  # c_t
    decay = (cum[:, :, None] - cum[:, None, :]).clamp(max=0).exp().tril()  # D_ts, s <= t
    coefficient, carry, momentum_decay = decay, None, None  # how W_t holds each write, and S_0
    if m1 is not None:
        if log_momentum_gate is None:  # beta = 0: S_t is the token's own step; S_0 is dropped
            momentum_decay = torch.eye(k.shape[1], dtype=k.dtype, device=k.device).expand_as(decay)
            momentum_from_start = torch.zeros_like(cum)
        else:
            b = log_momentum_gate.cumsum(-1)
            momentum_decay = (b[:, :, None] - b[:, None, :]).clamp(max=0).exp().tril()  # e^{b_r - b_s}
            momentum_from_start = b.exp()  # e^{b_t}
            coefficient = torch.bmm(decay, momentum_decay)
        carry = torch.bmm(decay, momentum_from_start.unsqueeze(-1))  # [N, C, 1]
    weights = coefficient * rate[:, None, :]  # (D_ts or its momentum form) rho_s
    grown = cum.exp().unsqueeze(-1)  # e^{c_t}  [N, C, 1]
    # reads after the write of token t
    query_pre = _read(q, w2, w2_anchor, grown, carry, m2).baddbmm_(torch.bmm(q, k.transpose(1, 2)) * weights, back)
    query_hidden = F.silu(query_pre)
    output = _read(query_hidden, w1, w1_anchor, grown, carry, m1).baddbmm_(
        torch.bmm(query_hidden, hidden.transpose(1, 2)) * weights, error)
    # the state after the chunk: W_C = A + e^{c_C} (W_0 - A) (+ carry_C S_0) + sum_s weights_Cs (.)
    last = weights[:, -1, :, None]  # [N, C, 1]
    run_decay = grown[:, -1:, :]  # [N, 1, 1]
    new_w1 = torch.baddbmm(_toward(w1, w1_anchor, run_decay), error.transpose(1, 2), last * hidden)
    new_w2 = torch.baddbmm(_toward(w2, w2_anchor, run_decay), back.transpose(1, 2), last * k)
    new_m1 = new_m2 = None
    if m1 is not None:
        new_w1 = new_w1.add_(carry[:, -1:] * m1)
        new_w2 = new_w2.add_(carry[:, -1:] * m2)
        step = (momentum_decay[:, -1] * rate)[:, :, None]  # e^{b_C - b_s} rho_s
        start = momentum_from_start[:, -1, None, None]
        new_m1 = torch.baddbmm(start * m1, error.transpose(1, 2), step * hidden)
        new_m2 = torch.baddbmm(start * m2, back.transpose(1, 2), step * k)
    if not return_error:
        return DeepMemoryResult(output, None, new_w1, new_w2, back, rate, new_m1, new_m2)
    # the error before each write: the weights at t - 1, each row of the coefficients one token back
    before = F.pad(weights[:, :-1], (0, 0, 1, 0))
    previous = (cum - log_retention).exp().unsqueeze(-1)  # e^{c_{t-1}}
    carried = None if carry is None else F.pad(carry[:, :-1], (0, 0, 1, 0))
    key_pre = _read(k, w2, w2_anchor, previous, carried, m2).baddbmm_(torch.bmm(k, k.transpose(1, 2)) * before, back)
    key_hidden = F.silu(key_pre)
    prediction = _read(key_hidden, w1, w1_anchor, previous, carried, m1).baddbmm_(
        torch.bmm(key_hidden, hidden.transpose(1, 2)) * before, error)
    return DeepMemoryResult(output, v - prediction, new_w1, new_w2, back, rate, new_m1, new_m2)


def _read(x, w, anchor, decay, carry, momentum):
    """x through what the start state leaves at each token: A + decay (W - A) (+ carry S_0)."""
    out = _decayed(x, w, anchor, decay)
    return out if carry is None else out.addcmul_(carry, torch.bmm(x, momentum.transpose(1, 2)))


def _decayed(x, w, anchor, decay):
    """x (A + decay (W - A))^T per token: x [N, C, i], w and anchor [N, o, i], decay [N, C, 1] -> [N, C, o]."""
    out = decay * torch.bmm(x, w.transpose(1, 2))
    return out if anchor is None else out.addcmul_(1 - decay, torch.bmm(x, anchor.transpose(1, 2)))


def _toward(w, anchor, decay):
    """A + decay (W - A): w, anchor [N, o, i], decay [N, 1, 1]."""
    return decay * w if anchor is None else torch.lerp(anchor, w, decay)
