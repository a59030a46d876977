"""Exact reconstruction from the recorded write factors (float64 recurrences): memory states, their norms
and the size of each write, and the scan the CMS events use.

The memory's Frobenius norm and the size of each write follow from scalar recurrences, so no
memory matrix has to be materialised per token:

    M_t = a M_{t-1} + u k^T, with p = M_{t-1} k known from the forward pass (p = v - error), gives
    ||M_t||^2           = a^2 ||M_{t-1}||^2 + 2 a (u . p) + ||u||^2 ||k||^2
    ||M_t - M_{t-1}||^2 = (a-1)^2 ||M_{t-1}||^2 + 2 (a-1) (u . p) + ||u||^2 ||k||^2
A CMS level is the same with one update per block: u k^T becomes the block's sum of writes. The deep
memory's two matrices retain toward their initial weights A: their offsets W - A follow the same rule.
"""
from __future__ import annotations

import torch


def linear_scan(a: torch.Tensor, b: torch.Tensor, x0: torch.Tensor, max_log_range: float = 600.0) -> torch.Tensor:
    """x_t = a_t x_{t-1} + b_t along the last axis (a_t > 0), returning x_1..x_T.

    Closed form per run of tokens: with L_t the cumulative log a_t inside the run,
    x_t = e^{L_t} (x_start + sum_{s<=t} e^{-L_s} b_s). Each term keeps its own relative precision
    (e^{L_t - L_s} <= 1 for a <= 1), and a run is as long as keeps |L| within ``max_log_range``
    nats, far from float64's limits: one run for every realistic retention, so a few whole-length
    ops instead of [T, chunk] decay matrices (which cost 10x more here)."""
    T = a.shape[-1]
    if T == 0:
        return b.clone()
    log_a = a.log()
    # (a diverged run's NaN is left to propagate in its own row, as through the recurrence itself)
    worst = float(log_a.abs().nan_to_num(nan=0.0, posinf=float("inf")).max())
    run = T if worst * T <= max_log_range else max(1, int(max_log_range / worst))
    out, x = [], x0
    for start in range(0, T, run):
        cum = log_a[..., start:start + run].cumsum(-1)
        x_run = cum.exp() * (x.unsqueeze(-1) + (b[..., start:start + run] * (-cum).exp()).cumsum(-1))
        out.append(x_run)
        x = x_run[..., -1]
    return torch.cat(out, -1) if len(out) != 1 else out[0]


def memory_norms(initial: torch.Tensor, keys, writes, predictions, retention):
    """Per-token ||M_t|| and ||M_t - M_{t-1}|| of a gated-delta memory.

    initial [H, d, d]; keys, writes, predictions [T, H, d] (u_t and M_{t-1} k_t); retention [T, H].
    Returns two [T, H] float64 tensors.
    """
    a = retention.double().T  # [H, T]
    # Per-token dot products of the float32 factors (as precise as the factors themselves; float64
    # copies of [T, H, d] cost 5x more than the rest), the long recurrence in float64.
    cross = torch.linalg.vecdot(writes, predictions).double().T  # u . p
    rank_one = (torch.linalg.vecdot(writes, writes) * torch.linalg.vecdot(keys, keys)).double().T  # ||u k^T||^2
    norm0 = initial.double().square().sum((-1, -2))  # [H]
    squared = linear_scan(a.square(), 2 * a * cross + rank_one, norm0)  # ||M_t||^2
    previous = torch.cat([norm0[:, None], squared[:, :-1]], dim=1)
    write = (a - 1).square() * previous + 2 * (a - 1) * cross + rank_one
    return squared.clamp(min=0).sqrt().T, write.clamp(min=0).sqrt().T


def anchored_norms(initial: torch.Tensor, anchor: torch.Tensor, keys, writes, retention):
    """Per-token ||W_t|| and ||W_t - W_{t-1}|| of a matrix whose retention pulls toward ``anchor`` (the deep
    memory's W1 and W2): W_t - A = a_t (W_{t-1} - A) + u_t k_t^T is a gated-delta memory in the offset
    O = W - A, and ||W_t||^2 = ||O_t||^2 + 2 <O_t, A> + ||A||^2 with <O_t, A> = a_t <O_{t-1}, A> + u_t . A k_t.
    initial, anchor [H, o, i]; keys [T, H, i]; writes [T, H, o]; retention [T, H]. Two [T, H] float64 tensors."""
    offset = initial.double() - anchor.double()
    norms, deltas = memory_norms(offset, keys, writes, predictions(offset, keys, writes, retention).float(), retention)
    anchor_keys = torch.einsum("hoi,thi->tho", anchor.double(), keys.double())  # A k_t [T, H, o]
    along = linear_scan(retention.double().T, torch.linalg.vecdot(writes.double(), anchor_keys).T,
                        (offset * anchor.double()).sum((-1, -2)))  # <O_t, A> [H, T]
    squared = norms.square() + 2 * along.T + anchor.double().square().sum((-1, -2))
    return squared.clamp(min=0).sqrt(), deltas


def rebuild_gated_delta(initial: torch.Tensor, keys, writes, retention, t: int) -> torch.Tensor:
    """M_t (after token t) = e^{c_t} M_0 + sum_{s<=t} e^{c_t - c_s} u_s k_s^T, in float64. [H, d, d]."""
    log_a = retention[:t + 1].double().log()  # [t+1, H]
    c = log_a.cumsum(0)
    weight = (c[-1] - c).exp()  # [t+1, H]
    u = writes[:t + 1].double() * weight[..., None]
    return c[-1].exp()[:, None, None] * initial.double() + torch.einsum("shv,shk->hvk", u, keys[:t + 1].double())


def replay(initial, keys, writes, retention, momentum_gate=None, initial_momentum=None, steps: int | None = None):
    """Per-token replay in float64, yielding M_t after each token t < steps.

    Without ``momentum_gate``: M_t = a_t M_{t-1} + u_t k_t^T. With it (Titans):
    S_t = beta_t S_{t-1} + u_t k_t^T and M_t = a_t M_{t-1} + S_t. Shapes as in :func:`memory_norms`."""
    memory = initial.double()
    momentum = initial_momentum.double() if initial_momentum is not None else None
    for s in range(keys.shape[0] if steps is None else steps):
        write = writes[s].double()[:, :, None] * keys[s].double()[:, None, :]
        if momentum_gate is not None:
            momentum = momentum_gate[s].double()[:, None, None] * momentum + write
            write = momentum
        memory = retention[s].double()[:, None, None] * memory + write
        yield memory


def rebuild_memory(factors: dict, head: int, t: int) -> torch.Tensor:
    """M_t of one head from a layer's factors by name ("keys", "writes", "retention", "initial.memory", and
    "momentum_gate", "initial.momentum" with momentum, "anchor" where retention pulls toward it: the deep
    memory's matrices). [d, dk] float64."""
    pick = lambda name: factors[name][:, head:head + 1]
    initial = factors["initial.memory"][head:head + 1]
    if t < 0:
        return initial[0].double()
    anchor = factors["anchor"][head].double() if "anchor" in factors else 0.0  # W_t - A follows the rule
    if "momentum_gate" in factors:
        *_, memory = replay(initial - anchor, pick("keys"), pick("writes"), pick("retention"), pick("momentum_gate"),
                            factors["initial.momentum"][head:head + 1], steps=t + 1)
        return memory[0] + anchor
    return rebuild_gated_delta(initial - anchor, pick("keys"), pick("writes"), pick("retention"), t)[0] + anchor


def momentum_norms(initial, initial_momentum, keys, writes, retention, momentum_gate, anchor=None):
    """Per-token ||M_t|| and ||M_t - M_{t-1}|| for the momentum memory (a replay: momentum presets only);
    with ``anchor`` (the deep memory's matrices), M_t - A follows the rule."""
    anchor = 0.0 if anchor is None else anchor.double()
    norms, deltas, previous = [], [], initial.double() - anchor
    for memory in replay(initial - anchor, keys, writes, retention, momentum_gate, initial_momentum):
        deltas.append((memory - previous).square().sum((-1, -2)).sqrt())
        norms.append((memory + anchor).square().sum((-1, -2)).sqrt())
        previous = memory
    return torch.stack(norms), torch.stack(deltas)


def predictions(initial: torch.Tensor, keys, writes, retention, chunk: int = 64) -> torch.Tensor:
    """M_{t-1} k_t for every token of a gated-delta memory [T, H, d], float64, replayed chunk by chunk:
    within a chunk M_{t-1} k_t = e^{c_{t-1}} M_start k_t + sum_{s<t} e^{c_{t-1} - c_s} (k_s . k_t) u_s, with c
    the chunk's cumulative log retention (so no per-token matrix is formed). Shapes as in :func:`memory_norms`."""
    T, H = keys.shape[:2]
    memory = initial.double()  # [H, d, dk]
    out = []
    for start in range(0, T, chunk):
        k = keys[start:start + chunk].double().transpose(0, 1)  # [H, n, dk]
        u = writes[start:start + chunk].double().transpose(0, 1)  # [H, n, d]
        c = retention[start:start + chunk].double().log().cumsum(0).T  # [H, n]: c_t, inclusive
        c_before = torch.cat([c.new_zeros(H, 1), c[:, :-1]], dim=1)  # c_{t-1}
        n = k.shape[1]
        earlier = torch.ones(n, n, dtype=torch.bool).tril(-1)  # s < t
        decay = (c_before[:, :, None] - c[:, None, :]).masked_fill(~earlier, float("-inf")).exp()  # [H, t, s]
        out.append(c_before.exp()[..., None] * (k @ memory.transpose(1, 2)) + (decay * (k @ k.transpose(1, 2))) @ u)
        memory = c[:, -1:, None].exp() * memory + ((c[:, -1:] - c).exp()[..., None] * u).transpose(1, 2) @ k
    return torch.cat(out, dim=1).transpose(0, 1) if out else writes.new_zeros(writes.shape, dtype=torch.float64)
