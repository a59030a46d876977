"""Weighted next-byte loss over a window read in segments: truncated backprop through the memory state.

A window [B, L + 1] is read in segments of ``segment_len`` tokens. The state (every fast weight,
the attention cache, the clocks) flows from one segment into the next, detached: gradients never
cross a segment boundary, but the memory written in one segment is read in the next. With
``backward_scale`` each segment is backpropagated as soon as it is read, so only one segment's
graph is alive at a time; gradients accumulate over the window.
"""
from __future__ import annotations

import contextlib

import torch
import torch.nn.functional as F


def segmented_loss(model, tokens: torch.Tensor, weights: torch.Tensor, segment_len: int, ablation=None,
                   backward_scale: float | None = None, autocast_dtype: torch.dtype | None = None):
    """(sum of weight x cross-entropy in nats, sum of weights) over targets ``tokens[:, 1:]``.

    ``model`` may be wrapped in DistributedDataParallel: gradients are then all-reduced once, in
    the last segment's backward (the others run under ``no_sync``)."""
    inputs, targets, target_weights = tokens[:, :-1], tokens[:, 1:], weights[:, 1:].to(tokens.device)
    length = inputs.shape[1]
    kwargs = {} if ablation is None else {"ablation": ablation}
    device_type = tokens.device.type
    total, state = torch.zeros((), dtype=torch.float64, device=tokens.device), None
    for start in range(0, length, segment_len):
        end = min(start + segment_len, length)
        defer_sync = backward_scale is not None and end < length and hasattr(model, "no_sync")
        with model.no_sync() if defer_sync else contextlib.nullcontext():
            with torch.autocast(device_type, dtype=autocast_dtype) if autocast_dtype else contextlib.nullcontext():
                # targets: the text's next bytes, which cms_objective "lm" levels learn from (others ignore them)
                out = model(inputs[:, start:end], state=state, targets=targets[:, start:end], **kwargs)
            nats = F.cross_entropy(out.logits.float().flatten(0, 1), targets[:, start:end].flatten(), reduction="none")
            segment = (nats * target_weights[:, start:end].flatten()).sum()
            if backward_scale is not None:
                (segment * backward_scale).backward()
        total += segment.detach().double()
        state = out.state.detach()
    return total, target_weights.sum().double()
