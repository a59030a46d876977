"""What a traced forward hands out: the layers' per-token internals, as typed values.

``model(tokens, trace=True)`` returns them in ``HopeOutput.trace``; without ``trace`` nothing here is
built. Shapes (B batch, H memory heads, T tokens, d memory head width, dk key width = d x key_expansion,
D model width, h CMS hidden width):

    MemoryTrace   per-token streams [B, H, T]; unit_keys, values, errors [B, H, T, d]; keys [B, H, T, dk];
                  the 2-layer memory's write factors hidden, hidden_errors [B, H, T, d], write_rate [B, H, T]
    CMSTrace      input [B, T, D]: it replays every "local" level exactly; levels' write pairs when asked for;
                  an "lm" level's weights after each of its updates
    LayerTrace    one block's memory, CMS and attention weights [B, heads, T, keys] (None: not there or off)
    HopeTrace     one LayerTrace per block
The recorder turns these into a recording's streams (recording/streams.py names them).
"""
from __future__ import annotations

from dataclasses import dataclass, fields

import torch


def _cat_tokens(pieces: list[torch.Tensor]) -> torch.Tensor:
    """Concatenate along the token axis [B, H, T, ...] without copying a single piece (the one-chunk case)."""
    return pieces[0] if len(pieces) == 1 else torch.cat(pieces, dim=2)


@dataclass(frozen=True)
class MemoryTrace:
    """Everything the recorder needs to rebuild a memory's M_t exactly: the rates actually applied (with
    test-time updates off nothing is written and nothing decays)."""
    surprise: torch.Tensor  # ||v_t - M_{t-1} k_t||, exact per token
    gate_surprise: torch.Tensor  # ||v_t - M_c k_t|| / ||v_t||, against the chunk-start memory
    learning_rate: torch.Tensor  # applied: 0 with updates off
    retention: torch.Tensor  # applied: 1 with updates off
    unit_keys: torch.Tensor  # l2norm(k_t) [.., d]: the key feature map's input
    keys: torch.Tensor  # phi(unit key) [.., dk]: what the memory wrote with
    values: torch.Tensor  # v_t [.., d]
    errors: torch.Tensor  # v_t - M_{t-1} k_t [.., d] (momentum and memory_depth 2: at the chunk start's weights; updates off: never written)
    momentum_gate: torch.Tensor | None = None  # beta_t: momentum configs with updates on
    # memory_depth 2 (M(x) = r(x) + W1 silu(W2 x)): W1 += rho e a^T and W2 += rho d k^T, a and d at the chunk start's weights
    hidden: torch.Tensor | None = None  # a_t = silu(W2 k_t) [.., d]: the key of W1's write
    hidden_errors: torch.Tensor | None = None  # d_t = silu'(W2 k_t) * (W1^T e_t) [.., d]: W2's write direction
    write_rate: torch.Tensor | None = None  # rho_t: the step each token took (0 with updates off)

    @classmethod
    def cat(cls, parts: list[MemoryTrace]) -> MemoryTrace:
        """Chunks' traces joined along the token axis."""
        return cls(**{f.name: None if getattr(parts[0], f.name) is None else _cat_tokens([getattr(p, f.name) for p in parts])
                      for f in fields(cls)})

    def detach(self) -> MemoryTrace:
        """The same streams outside any autograd graph (an lm model traces inside its gradient pieces)."""
        return type(self)(**{f.name: None if getattr(self, f.name) is None else getattr(self, f.name).detach()
                             for f in fields(self)})


@dataclass(frozen=True)
class CMSLevelTrace:
    """One level's write pairs: token t writes (keys_t -> values_t) at learning_rate_t."""
    keys: torch.Tensor  # phi(z_{t-1}) [B, T, h]
    values: torch.Tensor  # z_t - z_{t-1} [B, T, D]
    writes: torch.Tensor  # u_t = lr_t (values_t - W_b keys_t) [B, T, D]
    learning_rate: torch.Tensor  # [B, T] (0 for a stream's first token)
    retention: torch.Tensor  # [] the level's retention per update


@dataclass(frozen=True)
class CMSLevelUpdates:
    """A ``cms_objective="lm"`` level's updates in a call: its weights come from the model's loss, which no
    replay of the chain recomputes, so the trace keeps the weights after each update."""
    tokens: torch.Tensor  # [U] int64: the call's token whose block end applied the update
    memory: torch.Tensor  # [B, U, D, h]: W after it


@dataclass(frozen=True)
class CMSTrace:
    input: torch.Tensor  # the chain's input [B, T, D]
    # Per level, with ``trace_levels``: its write pairs, None for a level switched off or not writing.
    levels: tuple[CMSLevelTrace | None, ...] = ()
    # cms_objective "lm": per level, the updates it applied (none for a level switched off)
    updates: tuple[CMSLevelUpdates, ...] = ()


@dataclass(frozen=True)
class LayerTrace:
    memory: MemoryTrace | None = None
    cms: CMSTrace | None = None
    attention_weights: torch.Tensor | None = None  # [B, heads, T, keys], with ``trace_attention``
    # with ``trace_attention``: the norm [B, T] of what each branch that ran ("attention", "memory", "cms",
    # "ffn") added to the residual stream at each token
    residual_updates: dict[str, torch.Tensor] | None = None


@dataclass(frozen=True)
class HopeTrace:
    layers: tuple[LayerTrace, ...] = ()
