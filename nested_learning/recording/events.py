"""CMS update events from one level's recorded write pairs (exact algebra, float64).

A level with period P updates once per block: W_{b+1} = retention W_b + P_b, P_b = sum_{s in b} u_s k_s^T
(+ the pending sum carried into the recording for the first block). With r_s = u_s / lr_s = v_s - W_b k_s
known per token, every event statistic needs only in-block inner products:

    <W_b, P_b>      = sum_s u_s . (v_s - r_s)
    ||P_b||^2       = sum_{s,s'} (u_s . u_s')(k_s . k_s')
    ||W_{b+1}||^2   = a^2 ||W_b||^2 + 2 a <W_b, P_b> + ||P_b||^2       (a scalar scan over blocks)
    update norm     = ||(a - 1) W_b + P_b||
    objective       = mean over the block's pairs of 1/2||W k_s - v_s||^2, before (W_b) and after (W_{b+1}):
                      v_s - W_{b+1} k_s = (1 - a) v_s + a r_s - P_b k_s
Pairs of a block that began before the recording are outside it: their objective terms are not counted
(their writes are, through the carried pending sum).
"""
from __future__ import annotations

import torch

from .reconstruction import linear_scan


def level_events(keys, values, writes, learning_rate, retention: float, period: int, start: int,
                 initial_memory, initial_pending) -> dict[str, torch.Tensor]:
    """keys [T, h], values / writes [T, D], learning_rate [T]; initial_memory / pending [D, h].

    Returns per completed block: token_index (in the recording), update_norm, objective_before,
    objective_after.
    """
    T = keys.shape[0]
    f64 = lambda t: t.double()
    keys, values, writes, lr = f64(keys), f64(values), f64(writes), f64(learning_rate)
    W0, P0, a = f64(initial_memory), f64(initial_pending), float(retention)
    front = start % period  # tokens of the first block that came before this recording
    n_blocks = -(-(front + T) // period)
    pad = lambda x: torch.nn.functional.pad(x, (0, 0) * (x.dim() - 1) + (front, n_blocks * period - front - T))
    K, V, U = (pad(x).view(n_blocks, period, -1) for x in (keys, values, writes))
    lr = pad(lr[:, None]).view(n_blocks, period, 1)
    active = (lr[..., 0] > 0).double()  # real pairs: padding and the stream's first token have none
    R = U / lr.clamp(min=1e-30) * active[..., None]  # r_s = v_s - W_b k_s
    if period * (K.shape[-1] + U.shape[-1]) > K.shape[-1] * U.shape[-1]:
        # Long blocks: the block sums P_b [n, D, h] cost less than the [n, P, P] Gram matrices.
        block_sum = U.transpose(1, 2) @ K
        written = K @ block_sum.transpose(1, 2)  # (P_b k_s) without the carried pending
        squared = block_sum.square().sum((1, 2))
    else:
        gram = K @ K.transpose(1, 2)  # [n, P, P]
        written = gram @ U
        squared = ((U @ U.transpose(1, 2)) * gram).sum((1, 2))
    carried_k = torch.zeros_like(V)
    carried_k[0] = K[0] @ P0.T  # P0 k_s for the first block's tokens
    cross = (U * (V - R)).sum((1, 2))  # <W_b, P_b> from this recording's writes
    cross[0] += (W0 * P0).sum()
    squared[0] += P0.square().sum() + 2 * (U[0] * carried_k[0]).sum()
    norm0 = W0.square().sum()
    norms = torch.cat([norm0[None], linear_scan(torch.full_like(cross, a * a), 2 * a * cross + squared, norm0)])
    update = ((a - 1) ** 2 * norms[:-1] + 2 * (a - 1) * cross + squared).clamp(min=0).sqrt()
    pairs = active.sum(1).clamp(min=1)
    before = 0.5 * R.square().sum(2).mul(active).sum(1) / pairs
    after_residual = (1 - a) * V + a * R - written - carried_k
    after = 0.5 * after_residual.square().sum(2).mul(active).sum(1) / pairs
    last_token = torch.arange(n_blocks) * period + period - 1 - front  # index in the recording
    complete = last_token < T
    return {"token_index": last_token[complete], "update_norm": update[complete].float(),
            "objective_before": before[complete].float(), "objective_after": after[complete].float()}
