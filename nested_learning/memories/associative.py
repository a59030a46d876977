"""AssociativeMemory: a single matrix memory W (value_dim x key_dim) you can use on its own.

    hebbian: W <- W + lr v k^T               one gradient step on -<W k, v>  (linear attention)
    delta:   W <- W - lr (W k - v) k^T       one gradient step on 1/2||W k - v||^2
With unit keys and lr = 1 the delta rule overwrites the slot of k exactly, so N <= key_dim pairs with
orthonormal keys are recalled perfectly; correlated keys make Hebbian writes interfere (crosstalk),
which the delta rule removes. The learn-page demo and the validation suite use this class.
"""
from __future__ import annotations

import torch

RULES = ("hebbian", "delta")


class AssociativeMemory:
    def __init__(self, key_dim: int, value_dim: int | None = None, rule: str = "delta", learning_rate: float = 1.0,
                 normalize_keys: bool = True, dtype=torch.float32, device=None):
        if rule not in RULES:
            raise ValueError(f"rule must be one of {RULES}, got {rule!r}")
        if not (isinstance(key_dim, int) and key_dim > 0):
            raise ValueError(f"key_dim must be a positive integer, got {key_dim!r}")
        if not 0 < learning_rate <= 2:
            raise ValueError(f"learning_rate must be in (0, 2], got {learning_rate}")
        self.rule, self.learning_rate, self.normalize_keys = rule, learning_rate, normalize_keys
        self.weight = torch.zeros(value_dim or key_dim, key_dim, dtype=dtype, device=device)

    def _key(self, key: torch.Tensor) -> torch.Tensor:
        key = torch.as_tensor(key, dtype=self.weight.dtype, device=self.weight.device)
        return torch.nn.functional.normalize(key, dim=-1) if self.normalize_keys else key

    def write(self, key, value) -> torch.Tensor:
        """Store one pair (or a sequence of pairs [N, d], written in order). Returns the update applied."""
        keys, values = self._key(key), torch.as_tensor(value, dtype=self.weight.dtype, device=self.weight.device)
        if keys.dim() == 1:
            keys, values = keys[None], values[None]
        before = self.weight
        for k, v in zip(keys, values):
            target = v if self.rule == "hebbian" else v - self.weight @ k
            self.weight = self.weight + self.learning_rate * torch.outer(target, k)
        return self.weight - before

    def read(self, key) -> torch.Tensor:
        """Retrieve the value(s) stored under key [d] or keys [N, d]."""
        keys = self._key(key)
        return keys @ self.weight.T

    def reset(self):
        self.weight = torch.zeros_like(self.weight)
