"""Ablation: which components run in one forward call.

An Ablation is a frozen value passed to every call and never stored on a module, so one model object
serves many threads (browser sessions) with different ablations at once.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass


@dataclass(frozen=True)
class Ablation:
    attention: bool = True
    memory: bool = True  # the self-modifying memory branch
    cms: bool = True  # the whole Continuum Memory System
    cms_levels_off: frozenset[int] = frozenset()  # single CMS levels switched off (0 = fastest)
    persistent_tokens: bool = True
    ffn: bool = True
    test_time_updates: bool = True  # off: every memory and CMS level stays at the state it starts the call in
    momentum: bool = True
    retention: bool = True  # off: retention = 1 (nothing decays)
    self_modification: bool = True  # off: the projection memories keep their learned initial weights
    adaptive_lr: bool = True  # off: the learning rate is the learned constant, blind to token and surprise

    SWITCHES = ("attention", "memory", "cms", "persistent_tokens", "ffn", "test_time_updates",
                "momentum", "retention", "self_modification", "adaptive_lr")

    def __post_init__(self):
        levels = frozenset(self.cms_levels_off)
        if any(not isinstance(i, int) or i < 0 for i in levels):
            raise ValueError(f"cms_levels_off must hold level indices >= 0, got {sorted(levels, key=str)}")
        object.__setattr__(self, "cms_levels_off", levels)

    def cms_level(self, index: int) -> bool:
        """Whether CMS level ``index`` runs."""
        return self.cms and index not in self.cms_levels_off

    @classmethod
    def all_off(cls) -> "Ablation":
        return cls(**{name: False for name in cls.SWITCHES})

    @classmethod
    def from_names(cls, names: str | list[str] | None) -> "Ablation":
        """Parse switches to turn off, e.g. ``"memory,cms.2"``; unknown names raise ValueError."""
        if names is None:
            return cls()
        if isinstance(names, str):
            names = [n.strip() for n in names.split(",")]
        off, levels = {}, set()
        for name in (n for n in names if n):
            if name.startswith("cms.") and name[4:].isdigit():
                levels.add(int(name[4:]))
            elif name in cls.SWITCHES:
                off[name] = False
            else:
                raise ValueError(f"unknown ablation {name!r}; use {', '.join(cls.SWITCHES)} or cms.N")
        return cls(cms_levels_off=frozenset(levels), **off)

    def names_off(self) -> list[str]:
        """Inverse of :meth:`from_names`."""
        names = [n for n in self.SWITCHES if not getattr(self, n)]
        return names + [f"cms.{i}" for i in sorted(self.cms_levels_off)]

    def applicable(self, config) -> list[str]:
        """The switch names (as :meth:`from_names` reads them) that would change a run of a model with this
        ``config`` (a HopeConfig) under this ablation: components the config has and this ablation leaves
        on; a switch inside a component (momentum, a CMS level) only while its component runs."""
        attention = config.attention and self.attention
        memory = config.memory and self.memory
        cms = bool(config.cms_periods) and self.cms
        present = {"attention": attention, "memory": memory, "cms": cms,
                   "persistent_tokens": attention and config.n_persistent_tokens > 0, "ffn": config.ffn,
                   "test_time_updates": memory or cms, "momentum": memory and config.momentum,
                   "retention": memory or cms, "self_modification": memory and config.self_modifying,
                   "adaptive_lr": memory}
        names = []
        for name in self.SWITCHES:
            names += [name] if present[name] and getattr(self, name) else []
            if name == "cms":  # its levels right after it
                names += [f"cms.{j}" for j in range(len(config.cms_periods)) if cms and self.cms_level(j)]
        return names

    def replace(self, **changes) -> "Ablation":
        return dataclasses.replace(self, **changes)
