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
    """Depthwise causal conv over tokens; the last ``width - 1`` inputs carry across calls in the state."""

    def __init__(self, channels: int, width: int):
        super().__init__()
        self.width = width
        weight = torch.zeros(channels, width)
        weight[:, -1] = 1.0  # starts as the identity; training learns the mixing
        self.weight = nn.Parameter(weight)

    def forward(self, x: torch.Tensor, history: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x [B, T, C], history [B, width-1, C] -> (y [B, T, C], new history)."""
        full = torch.cat([history, x], dim=1)
        windows = full.unfold(1, self.width, 1)  # [B, T, C, width]
        y = (windows * self.weight).sum(-1)
        return y, full[:, full.shape[1] - (self.width - 1):]
