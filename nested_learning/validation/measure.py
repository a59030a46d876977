"""Scoring a batch: per-token next-byte loss and argmax hits, and the helpers every experiment shares.

Batch rows are independent sequences (every fast weight is per sample), so one call scores a whole
batch of equal-length sequences. Scores are indexed by the position of the *predicted* token:
``loss[b, p]`` is the loss of token p given tokens < p; position 0 of a call has no prediction (NaN).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..ablation import Ablation
from ..model import HopeTransformer, next_token_targets
from ..state import HopeState
from ..trace import HopeTrace

FULL = Ablation()


@dataclass
class Scores:
    loss: torch.Tensor  # [B, T] nats; NaN at position 0
    correct: torch.Tensor  # [B, T] float 1/0 (argmax equals the token); NaN at position 0
    state: HopeState  # after the last token
    logits: torch.Tensor  # [B, T, vocab]
    trace: HopeTrace | None = None  # the layers' internals, when asked for


def score(model: HopeTransformer, tokens: torch.Tensor, state: HopeState | None = None,
          ablation: Ablation | None = None, trace: bool = False, following: torch.Tensor | None = None) -> Scores:
    """Read ``tokens`` [B, T] from ``state``. A model whose CMS levels learn from the next-token loss
    (``cms_objective`` "lm") is given the next tokens as it reads, as a recording and generation give them;
    ``following`` [B]: the token after the last (None: unknown, that one position carries no loss)."""
    tokens = tokens.to(model.device)
    lm = model.config.cms_objective == "lm" and bool(model.config.cms_periods)
    targets = next_token_targets(tokens, following) if lm else None
    # no autograd bookkeeping (about 10% faster than no_grad here); the lm levels' gradient needs autograd
    with torch.inference_mode() if targets is None else torch.no_grad():
        out = model(tokens, state=state, ablation=ablation or FULL, trace=trace, targets=targets)
    logits = out.logits.float()
    B, T, V = logits.shape
    loss = torch.full((B, T), float("nan"), device=logits.device)
    correct = torch.full((B, T), float("nan"), device=logits.device)
    if T > 1:
        predicted = logits[:, :-1]
        loss[:, 1:] = F.cross_entropy(predicted.reshape(-1, V), tokens[:, 1:].reshape(-1), reduction="none").view(B, T - 1)
        correct[:, 1:] = (predicted.argmax(-1) == tokens[:, 1:]).float()
    return Scores(loss.cpu(), correct.cpu(), out.state, logits, out.trace)


def masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Per-row mean of ``values`` [B, T] over ``mask`` ([B, T] or [T]); NaN for a row with nothing masked."""
    mask = mask.expand_as(values).bool() & ~torch.isnan(values)
    total = torch.where(mask, values, torch.zeros_like(values)).sum(1)
    count = mask.sum(1)
    return torch.where(count > 0, total / count.clamp(min=1), torch.full_like(total, float("nan")))


def local_reach(config) -> int | None:
    """How many tokens back information travels without the memories: per layer, attention's window - 1,
    the causal conv's width - 1 and one more with shifted keys (token t's own write, keyed by token t-1,
    is in the memory that token t reads). None: full causal attention reaches everything."""
    per_layer = 0
    if config.attention:
        if config.attention_window is None:
            return None
        per_layer += config.attention_window - 1
    if config.memory:
        per_layer += max(config.local_conv - 1, 0) + config.shifted_keys  # the conv sits on the memory's inputs
    return config.n_layers * per_layer


def parameter_snapshot(model: HopeTransformer) -> dict[str, torch.Tensor]:
    return {name: p.detach().clone() for name, p in model.named_parameters()}


def _bits(t: torch.Tensor) -> torch.Tensor:
    return t.detach().reshape(-1).contiguous().view(torch.uint8)  # bytes: NaN equals NaN, -0.0 differs from 0.0


def changed_parameters(model: HopeTransformer, snapshot: dict[str, torch.Tensor]) -> list[str]:
    """Names of parameters that are not bit-identical to the snapshot."""
    current = dict(model.named_parameters())
    return [name for name, before in snapshot.items() if not torch.equal(_bits(before), _bits(current[name]))]
