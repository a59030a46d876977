"""Small stateless building blocks: RMSNorm, the FFN, rotary embedding and a causal depthwise conv."""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float = 1e-6):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.rms_norm(x, (x.shape[-1],), self.weight, self.eps)


class FeedForward(nn.Module):
    """SwiGLU MLP."""

    def __init__(self, d_model: int, mult: int):
        super().__init__()
        hidden = mult * d_model * 2 // 3
        self.gate_up = nn.Linear(d_model, 2 * hidden, bias=False)
        self.down = nn.Linear(hidden, d_model, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate, up = self.gate_up(x).chunk(2, dim=-1)
        return self.down(F.silu(gate) * up)


def rotary(x: torch.Tensor, positions: torch.Tensor, base: float) -> torch.Tensor:
    """Rotate pairs of channels of x [B, H, T, d] by angles set by absolute stream positions [T]."""
    d = x.shape[-1]
    freqs = base ** (-torch.arange(0, d, 2, device=x.device, dtype=torch.float32) / d)
    angles = positions.to(torch.float32)[:, None] * freqs[None, :]  # [T, d/2]
    cos, sin = angles.cos().to(x.dtype), angles.sin().to(x.dtype)
    x1, x2 = x[..., 0::2], x[..., 1::2]
    return torch.stack((x1 * cos - x2 * sin, x1 * sin + x2 * cos), dim=-1).flatten(-2)


class CausalConv(nn.Module):
    """Depthwise causal conv over tokens; the last ``width - 1`` inputs carry across calls in the state.

    Initialised like PyTorch's Conv1d (uniform in +-1/sqrt(width)), not as the identity: a key that
    already mixes in the previous token is what lets the memory learn to bind a token to its successor
    (docs/model.md "Short causal conv" has the measurement)."""

    def __init__(self, channels: int, width: int):
        super().__init__()
        self.width = width
        self.weight = nn.Parameter((torch.rand(channels, width) * 2 - 1) * width ** -0.5)

    def forward(self, x: torch.Tensor, history: torch.Tensor,
                passthrough: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        """x [B, T, C + passthrough], history [B, width-1, C] -> (y [B, T, C + passthrough], new history).

        The last ``passthrough`` channels come out unchanged, in the same buffer: a caller that needs
        them next to the convolved ones (the self-modifying memory's k, v and gate inputs) gets them
        without a copy of its own."""
        T, W, C = x.shape[1], self.width, self.weight.shape[0]
        # taps[-1] weighs the current token, taps[-1 - s] the one s back. Contiguous rows: a strided
        # column of the [C, width] weight as a broadcast operand made each multiply ~5x slower.
        taps = self.weight.t().contiguous()
        current = torch.cat([taps[-1], taps.new_ones(passthrough)]) if passthrough else taps[-1]
        y = x * current
        conv, x = (y[..., :C], x[..., :C]) if passthrough else (y, x)
        for shift in range(1, W):  # shifted multiply-adds in place: no [T, C, width] or [T + W - 1, C] buffer
            weight = taps[-1 - shift]
            if T > shift:
                conv[:, shift:].addcmul_(x[:, :T - shift], weight)
            n = min(shift, T)  # the first tokens reach back into the previous call's inputs
            conv[:, :n].addcmul_(history[:, W - 1 - shift:W - 1 - shift + n], weight)
        # A copy, not a view: a view would keep the whole [B, T, C] input alive as long as the state
        # lives (and kept the allocator's heap from shrinking back cleanly between calls).
        new_history = x[:, T - (W - 1):].clone() if T >= W - 1 else torch.cat([history[:, T:], x], dim=1)
        return y, new_history
