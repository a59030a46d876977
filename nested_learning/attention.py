"""Causal multi-head attention with rotary positions, an optional sliding window, persistent memory
tokens (Titans section 3.3) and a key/value cache in the explicit state for streaming."""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from .config import HopeConfig
from .layers import rotary
from .state import AttentionCache


class CausalSelfAttention(nn.Module):
    def __init__(self, config: HopeConfig):
        super().__init__()
        self.n_heads, self.head_dim = config.n_heads, config.head_dim
        self.window = config.attention_window
        self.rope_base = config.rope_base
        self.qkv = nn.Linear(config.d_model, 3 * config.d_model, bias=False)
        self.out = nn.Linear(config.d_model, config.d_model, bias=False)
        # Persistent tokens: learned, input-independent slots, attended by every position, no rotary.
        self.persistent = (nn.Parameter(torch.randn(config.n_persistent_tokens, config.d_model) * config.init_std)
                           if config.n_persistent_tokens else None)

    def init_cache(self, batch_size: int, device, dtype) -> AttentionCache:
        empty = torch.zeros(batch_size, self.n_heads, 0, self.head_dim, device=device, dtype=dtype)
        return AttentionCache(empty, empty, torch.zeros(0, dtype=torch.long, device=device))

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        return x.view(x.shape[0], x.shape[1], self.n_heads, self.head_dim).transpose(1, 2)

    def forward(self, x: torch.Tensor, cache: AttentionCache, position: int, use_persistent: bool = True,
                return_weights: bool = False):
        """x [B, T, D] -> (y [B, T, D], new cache, attention weights [B, H, T, keys] or None)."""
        B, T, _ = x.shape
        q, k, v = (self._heads(t) for t in self.qkv(x).split(x.shape[-1], dim=-1))
        positions = torch.arange(position, position + T, device=x.device)
        q, k = rotary(q, positions, self.rope_base), rotary(k, positions, self.rope_base)
        keys = torch.cat([cache.keys, k], dim=2)
        values = torch.cat([cache.values, v], dim=2)
        key_positions = torch.cat([cache.positions, positions])
        if self.window is None:
            new_cache = AttentionCache(keys, values, key_positions)
        else:  # keep only the keys a future token can still see (copied: a view would keep all of them alive)
            keep = max(0, keys.shape[2] - (self.window - 1))
            new_cache = AttentionCache(*(t[..., keep:, :].clone() for t in (keys, values)), key_positions[keep:].clone())
        # Compared directly: an int64 [T, keys] offset matrix cost ~5x more than the attention mask itself.
        allowed = key_positions[None, :] <= positions[:, None]
        if self.window is not None:
            allowed &= key_positions[None, :] > (positions - self.window)[:, None]
        if self.persistent is not None and use_persistent:
            _, pk, pv = (self._heads(t) for t in self.qkv(self.persistent.unsqueeze(0)).split(x.shape[-1], dim=-1))
            keys = torch.cat([pk.expand(B, -1, -1, -1), keys], dim=2)
            values = torch.cat([pv.expand(B, -1, -1, -1), values], dim=2)
            allowed = torch.cat([allowed.new_ones(T, pk.shape[2]), allowed], dim=1)
        if return_weights:
            scores = (q @ keys.transpose(-1, -2)) / self.head_dim ** 0.5
            weights = scores.masked_fill(~allowed, float("-inf")).softmax(-1)
            y = weights @ values
        else:
            weights = None
            y = F.scaled_dot_product_attention(q, keys, values, attn_mask=allowed)
        y = self.out(y.transpose(1, 2).reshape(B, T, -1))
        return y, new_cache, weights
