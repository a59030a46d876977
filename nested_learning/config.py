"""HopeConfig: every architectural choice of the model in one dataclass, plus named presets.

Presets (see ``../shared/spec/HOPE.md`` section 4 and README):
    hope            attention + self-modifying memory (causal conv, window 4, on its q/k/v) + CMS + FFN,
                    persistent tokens (default)
    hope-paper      self-modifying Titans memory + CMS chain in place of the FFN, no attention,
                    causal conv (window 4) on q/k/v
    hope-attention  attention + CMS
    titans          attention + memory with static projections, momentum, retention + FFN
    transformer     attention + FFN: the same-size baseline
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class HopeConfig:
    vocab_size: int = 256  # UTF-8 bytes
    d_model: int = 128
    n_layers: int = 2
    n_heads: int = 4
    # Causal attention.
    attention: bool = True
    # Sliding window in tokens; None = full causal attention. Short, so that what lies further back
    # reaches a prediction only through the memories (HOPE.md pitfall 9; README "The model").
    attention_window: int | None = 16
    n_persistent_tokens: int = 4  # learned key/value slots every position can attend to
    rope_base: float = 10000.0
    # Test-time memory (SelfModifyingMemory).
    memory: bool = True
    self_modifying: bool = True  # k, v and gate features come from in-context-updated projection memories
    projection_hidden: int = 32  # hidden width of those projection memories
    projection_learning_rate: float = 0.5  # their rate, relative to the memory's (each step normalised)
    momentum: bool = False  # Titans momentum (mini-batch gradients at the chunk-start memory)
    memory_chunk_size: int = 64  # tokens per chunk: the learning-rate gate's surprise is taken at the chunk start
    max_learning_rate: float = 1.0  # eta_t in (0, max] (divided by memory_chunk_size with momentum)
    min_retention: float = 0.9  # retention alpha_t in [min, 1]
    max_momentum: float = 0.9
    local_conv: int = 0  # width of the causal depthwise conv on q/k/v inputs; 0 = none
    # Continuum Memory System: one level per period (tokens between updates).
    cms_periods: tuple[int, ...] = (1, 2, 4, 8)
    cms_hidden: int = 64
    cms_objective: str = "local"  # only "local": predict the next level input (README explains why)
    # Feed-forward network.
    ffn: bool = True
    ffn_mult: int = 4
    init_std: float = 0.02

    def __post_init__(self):
        object.__setattr__(self, "cms_periods", tuple(int(p) for p in self.cms_periods))
        positive = ("vocab_size", "d_model", "n_layers", "n_heads", "projection_hidden",
                    "memory_chunk_size", "cms_hidden", "ffn_mult")
        for name in positive:
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"config.{name} must be a positive integer, got {value!r}")
        if self.d_model % self.n_heads:
            raise ValueError(f"config.d_model ({self.d_model}) must be divisible by n_heads ({self.n_heads})")
        if self.attention_window is not None and (not isinstance(self.attention_window, int) or self.attention_window < 1):
            raise ValueError(f"config.attention_window must be None or a positive integer, got {self.attention_window!r}")
        if not isinstance(self.n_persistent_tokens, int) or self.n_persistent_tokens < 0:
            raise ValueError(f"config.n_persistent_tokens must be >= 0, got {self.n_persistent_tokens!r}")
        if not isinstance(self.local_conv, int) or self.local_conv < 0:
            raise ValueError(f"config.local_conv must be >= 0, got {self.local_conv!r}")
        if any(p < 1 for p in self.cms_periods):
            raise ValueError(f"config.cms_periods must be positive token counts, got {self.cms_periods}")
        if not 0.0 < self.max_learning_rate <= 1.0:
            raise ValueError(f"config.max_learning_rate must be in (0, 1], got {self.max_learning_rate}")
        if not 0.0 <= self.projection_learning_rate <= 1.0:
            raise ValueError(f"config.projection_learning_rate must be in [0, 1], got {self.projection_learning_rate}")
        if not 0.0 < self.min_retention <= 1.0:
            raise ValueError(f"config.min_retention must be in (0, 1], got {self.min_retention}")
        if not 0.0 <= self.max_momentum < 1.0:
            raise ValueError(f"config.max_momentum must be in [0, 1), got {self.max_momentum}")
        if self.cms_objective != "local":
            raise ValueError(f"config.cms_objective must be 'local', got {self.cms_objective!r}")

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_heads

    @classmethod
    def preset(cls, name: str = "hope", **overrides) -> "HopeConfig":
        if name not in PRESETS:
            raise ValueError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}")
        return cls(**{**PRESETS[name], **overrides})

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["cms_periods"] = list(self.cms_periods)
        return out

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "HopeConfig":
        """Build from a dict, rejecting unknown fields and wrong types with a one-line message."""
        if not isinstance(data, dict):
            raise ValueError("config must be a JSON object")
        known = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - set(known))
        if unknown:
            raise ValueError(f"unknown config field(s): {', '.join(unknown)}")
        clean = {}
        for name, value in data.items():
            kind = known[name].type
            if kind == "bool" and not isinstance(value, bool):
                raise ValueError(f"config.{name} must be true or false, got {value!r}")
            if kind == "float" and (isinstance(value, bool) or not isinstance(value, (int, float))):
                raise ValueError(f"config.{name} must be a number, got {value!r}")
            if kind == "tuple[int, ...]" and (not isinstance(value, (list, tuple))
                                              or not all(isinstance(p, int) and not isinstance(p, bool) for p in value)):
                raise ValueError(f"config.{name} must be a list of integers, got {value!r}")
            clean[name] = value
        return cls(**clean)


PRESETS: dict[str, dict[str, Any]] = {
    # The CMS chain adds four fast MLP levels per layer, so the FFN is half the transformer's width
    # (keeps Hope near the same-size transformer's parameter count; README "The model").
    "hope": dict(ffn_mult=2, local_conv=4),
    "hope-paper": dict(attention=False, n_persistent_tokens=0, ffn=False, momentum=True, local_conv=4),
    "hope-attention": dict(memory=False, ffn=False, n_persistent_tokens=0),
    "titans": dict(self_modifying=False, momentum=True, cms_periods=()),
    "transformer": dict(memory=False, cms_periods=(), n_persistent_tokens=0),
}
