"""HopeConfig: every architectural choice of the model in one dataclass, plus named presets.

Presets (docs/model.md "Presets"):
    hope            attention + self-modifying memory (one wide head, shifted keys widened by DPFP, causal
                    conv of width 4 on its inputs) + CMS + FFN, persistent tokens (default)
    hope-paper      self-modifying Titans memory + CMS chain in place of the FFN, no attention,
                    causal conv (window 4) on q/k/v
    hope-attention  attention + CMS
    titans          attention + memory with static projections, momentum, retention + FFN
    transformer     attention + FFN: the same-size baseline
Paper-size presets (``PAPER_PRESETS``, docs/model-options.md): hope-paper at the paper's 340 M, 760 M and
1.3 B parameters, 32 K vocabulary, CMS levels of periods 16, 128, 1,024 learning the next-token loss.
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Any

from .safe_files import short


# Bounds of every field. Generous (far beyond any model this tool trains, or one GPU holds) but finite,
# so that a config read from an untrusted file cannot ask for unbounded work. Integers: inclusive.
INT_BOUNDS = {
    "vocab_size": (1, 1 << 17),
    "d_model": (1, 16384),
    "n_layers": (1, 128),
    "n_heads": (1, 256),
    "n_persistent_tokens": (0, 1024),
    "projection_hidden": (1, 16384),
    "memory_chunk_size": (1, 65536),
    "local_conv": (0, 256),
    "cms_hidden": (1, 65536),
    "ffn_mult": (1, 64),
    "key_expansion": (1, 16),
    "memory_depth": (1, 2),
}
MAX_ATTENTION_WINDOW = 1 << 20  # tokens; or None for full causal attention
MAX_CMS_LEVELS = 16
MAX_CMS_PERIOD = 1 << 20  # tokens between a level's updates
# name: (low, high, low included, high included). Finite: NaN and inf are refused everywhere.
FLOAT_BOUNDS = {
    "rope_base": (1.0, 1e12, False, True),
    "projection_learning_rate": (0.0, 1.0, True, True),
    "max_learning_rate": (0.0, 1.0, False, True),
    "min_retention": (0.0, 1.0, False, True),
    "max_momentum": (0.0, 1.0, True, False),
    "init_std": (0.0, 1.0, False, True),
}
CMS_OBJECTIVES = ("local", "lm")
BOOL_FIELDS = ("attention", "memory", "self_modifying", "momentum", "momentum_dampening", "shifted_keys", "ffn")


def _check_int(name: str, value, low: int, high: int, alternative: str = "") -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        kind = f"a positive integer at most {high}" if low == 1 else f"an integer in [{low}, {high}]"
        raise ValueError(f"config.{name} must be {alternative}{kind}, got {short(value)}")


@dataclass(frozen=True)
class HopeConfig:
    """The model's architecture. Every field is checked on construction (types, and the bounds in
    ``INT_BOUNDS``, ``FLOAT_BOUNDS``, ``MAX_ATTENTION_WINDOW``, ``MAX_CMS_LEVELS``, ``MAX_CMS_PERIOD``)."""

    vocab_size: int = 256  # UTF-8 bytes
    d_model: int = 128
    n_layers: int = 2
    n_heads: int = 4
    # Causal attention.
    attention: bool = True
    # Sliding window in tokens; None = full causal attention. Short, so that what lies further back
    # reaches a prediction only through the memories (docs/model.md "Presets": trained in, as in Titans).
    attention_window: int | None = 16
    n_persistent_tokens: int = 4  # learned key/value slots every position can attend to
    rope_base: float = 10000.0
    # Test-time memory (SelfModifyingMemory).
    memory: bool = True
    self_modifying: bool = True  # k, v and gate features come from in-context-updated projection memories
    projection_hidden: int = 32  # hidden width of those projection memories
    projection_learning_rate: float = 0.5  # their rate, relative to the memory's (each step normalised)
    momentum: bool = False  # Titans momentum (mini-batch gradients at the chunk-start memory)
    # Each step enters the momentum times (1 - beta_t) (SGD's dampening): undamped, one chunk's steps add up
    # to 1 / (1 - beta) times the rate's bound, and a repeated key drives the memory to inf (docs/model.md).
    momentum_dampening: bool = True
    # Heads of the test-time memory; None = n_heads. Fewer, wider heads hold more: a head's memory
    # stores about head-width associations before new writes overwrite old ones (docs/model.md).
    memory_heads: int | None = None
    memory_chunk_size: int = 64  # tokens per chunk: the learning-rate gate's surprise is taken at the chunk start
    max_learning_rate: float = 1.0  # eta_t in (0, max] (divided by memory_chunk_size with momentum)
    min_retention: float = 0.9  # retention alpha_t in [min, 1]
    max_momentum: float = 0.9
    local_conv: int = 0  # width of the causal depthwise conv on q/k/v inputs; 0 = none
    # The key of token t is built from token t-1's query features: the memory binds "what came before"
    # to "what came next", and a later query of the same context reads its successor (induction).
    shifted_keys: bool = False
    # Key width of the memory, in multiples of its head width: 1 = keys as projected; an even n passes
    # keys and queries through DPFP (ops.dpfp, nu = n / 2) and the memory is d x n d: sparser, wider keys
    # overlap less, so a head holds more before new writes overwrite old ones (docs/model.md "Wider keys").
    key_expansion: int = 1
    # Layers of the memory: 1 = the linear matrix M (eq 88); 2 = the paper's MLP M(x) = x + W1 silu(W2 x)
    # (eq 89, hidden width = head width), written by mini-batch gradients per memory chunk (docs/deep-memory.md).
    memory_depth: int = 1
    # Continuum Memory System: one level per period (tokens between updates).
    cms_periods: tuple[int, ...] = (1, 2, 4, 8)
    cms_hidden: int = 64
    # "local": predict the next level input (docs/model.md explains why it is the default); "lm": the
    # next-token loss's gradient, from the targets passed to the forward (docs/model-options.md)
    cms_objective: str = "local"
    # Feed-forward network.
    ffn: bool = True
    ffn_mult: int = 4
    init_std: float = 0.02

    def __post_init__(self):
        """Check every field's type and bounds (the tables above the class); a bad value raises ValueError
        with one line naming the field."""
        for name in BOOL_FIELDS:
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"config.{name} must be true or false, got {short(getattr(self, name))}")
        for name, (low, high) in INT_BOUNDS.items():
            _check_int(name, getattr(self, name), low, high)
        for name, (low, high, low_closed, high_closed) in FLOAT_BOUNDS.items():
            value = getattr(self, name)
            inside = (isinstance(value, (int, float)) and not isinstance(value, bool)
                      and (low <= value if low_closed else low < value) and (value <= high if high_closed else value < high))
            if not inside:  # NaN fails every comparison, so it lands here too
                interval = f"{'[' if low_closed else '('}{low:g}, {high:g}{']' if high_closed else ')'}"
                raise ValueError(f"config.{name} must be a number in {interval}, got {short(value)}")
        if self.momentum and self.max_momentum == 0:  # the momentum gate is log-scaled by it
            raise ValueError("config.max_momentum must be above 0 with momentum on (or set momentum false)")
        if self.d_model % self.n_heads:
            raise ValueError(f"config.d_model ({self.d_model}) must be divisible by n_heads ({self.n_heads})")
        if self.attention and self.head_dim % 2:  # rotary positions turn channels in pairs
            raise ValueError(f"config.d_model / n_heads ({self.head_dim}) must be even with attention (rotary pairs)")
        if self.ffn and self.ffn_mult * self.d_model * 2 // 3 < 1:  # the FFN's hidden width
            raise ValueError(f"config.ffn_mult * d_model ({self.ffn_mult * self.d_model}) is too small for an FFN (>= 2)")
        if self.memory_heads is not None:
            _check_int("memory_heads", self.memory_heads, 1, INT_BOUNDS["n_heads"][1], "None or ")
            if self.d_model % self.memory_heads:
                raise ValueError(f"config.d_model ({self.d_model}) must be divisible by memory_heads ({self.memory_heads})")
        if self.key_expansion % 2 and self.key_expansion != 1:
            raise ValueError(f"config.key_expansion must be 1 (no feature map) or even (DPFP), got {self.key_expansion}")
        if self.attention_window is not None:
            _check_int("attention_window", self.attention_window, 1, MAX_ATTENTION_WINDOW, "None or ")
        periods = self.cms_periods
        if not isinstance(periods, (list, tuple)) or len(periods) > MAX_CMS_LEVELS:
            raise ValueError(f"config.cms_periods must be a list of at most {MAX_CMS_LEVELS} token counts, got {short(periods)}")
        for period in periods:
            if isinstance(period, bool) or not isinstance(period, int) or not 1 <= period <= MAX_CMS_PERIOD:
                raise ValueError(f"config.cms_periods must be token counts in [1, {MAX_CMS_PERIOD}], got {short(periods)}")
        object.__setattr__(self, "cms_periods", tuple(periods))
        if self.cms_objective not in CMS_OBJECTIVES:
            raise ValueError(f"config.cms_objective must be 'local' or 'lm', got {short(self.cms_objective)}")

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_heads

    @property
    def n_memory_heads(self) -> int:
        return self.memory_heads or self.n_heads

    @property
    def memory_head_dim(self) -> int:
        return self.d_model // self.n_memory_heads

    @property
    def memory_key_dim(self) -> int:
        return self.memory_head_dim * self.key_expansion

    @classmethod
    def preset(cls, name: str = "hope", **overrides) -> "HopeConfig":
        presets = {**PRESETS, **PAPER_PRESETS}
        if name not in presets:
            raise ValueError(f"unknown preset {short(name)}; choose one of {', '.join(presets)}")
        return cls(**{**presets[name], **overrides})

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["cms_periods"] = list(self.cms_periods)
        return out

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_saved(cls, data: dict[str, Any]) -> "HopeConfig":
        """:meth:`from_dict` for a config read from a checkpoint or recording: a field added after the file was
        written takes the value that reproduces what the file's model did (SAVED_BEFORE)."""
        if isinstance(data, dict):
            data = {**{name: value for name, (value, applies) in SAVED_BEFORE.items()
                       if name not in data and applies(data)}, **data}
        return cls.from_dict(data)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "HopeConfig":
        """Build from a dict, rejecting unknown fields and wrong types with a one-line message."""
        if not isinstance(data, dict):
            raise ValueError("config must be a JSON object")
        known = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - set(known))
        if unknown:
            shown = [n if n.isprintable() and len(n) <= 40 else short(n) for n in unknown[:5]]  # one short line
            raise ValueError(f"unknown config field(s): {', '.join(shown)}" + (" ..." if len(unknown) > 5 else ""))
        clean = {}
        for name, value in data.items():
            kind = known[name].type
            if kind == "bool" and not isinstance(value, bool):
                raise ValueError(f"config.{name} must be true or false, got {short(value)}")
            if kind == "float" and (isinstance(value, bool) or not isinstance(value, (int, float))):
                raise ValueError(f"config.{name} must be a number, got {short(value)}")
            if kind == "tuple[int, ...]" and (not isinstance(value, (list, tuple))
                                              or not all(isinstance(p, int) and not isinstance(p, bool) for p in value)):
                raise ValueError(f"config.{name} must be a list of integers, got {short(value)}")
            clean[name] = value
        return cls(**clean)


# Fields added after files were saved: (the value a file without the field means, when that applies).
SAVED_BEFORE: dict[str, tuple[Any, Any]] = {
    "momentum_dampening": (False, lambda data: data.get("momentum") is True),  # trained undamped
}

PRESETS: dict[str, dict[str, Any]] = {
    # The CMS chain adds four fast MLP levels per layer, so the FFN is half the transformer's width
    # (keeps Hope near the same-size transformer's parameter count; docs/model.md).
    "hope": dict(ffn_mult=2, local_conv=4, shifted_keys=True, memory_heads=1, key_expansion=8),
    "hope-paper": dict(attention=False, n_persistent_tokens=0, ffn=False, momentum=True, local_conv=4),
    "hope-attention": dict(memory=False, ffn=False, n_persistent_tokens=0),
    "titans": dict(self_modifying=False, momentum=True, cms_periods=()),
    "transformer": dict(memory=False, cms_periods=(), n_persistent_tokens=0),
}

# The paper's sizes (its Table of 340 M / 760 M / 1.3 B models, 32 K Llama-2 vocabulary, parameters counted
# with the tied embedding once; tests/model/test_paper_presets.py counts them). 24 layers of 16 heads;
# the CMS (three levels, 2 D h parameters each, hidden h = 1.25 D) stands in for the FFN. Kept out of
# PRESETS: the dashboard lists PRESETS, and a 1.3 B model has no place on a CPU dashboard.
_PAPER = dict(PRESETS["hope-paper"], vocab_size=32000, n_layers=24, n_heads=16, cms_periods=(16, 128, 1024),
              cms_objective="lm")
PAPER_PRESETS: dict[str, dict[str, Any]] = {
    "hope-paper-340m": dict(_PAPER, d_model=1024, cms_hidden=1280),
    "hope-paper-760m": dict(_PAPER, d_model=1536, cms_hidden=1920),
    "hope-paper-1.3b": dict(_PAPER, d_model=2048, cms_hidden=2560),
}
