"""What reaches one token: the few tokens attention reads, and how much the memory's read adds.

At a token of a run, the model is run again from the memory the run started from up to the token before
it, then the token itself once with everything on and once with the memory's read switched off for that
token only (the same state either way). Attention's weights show which of the last ``attention_window``
tokens (and the persistent tokens) it reads; each branch's addition to the residual stream shows what
the memory and the CMS add beside it; the two predictions show what the memory's read is worth here.
No Streamlit here."""
from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
import plotly.graph_objects as go
import torch
from plotly.subplots import make_subplots

from ..model import HopeTransformer
from ..recording import Recording
from ..state import HopeState
from ..tokenizer import ByteTokenizer
from .safe_text import plotly_label

BRANCHES = ("attention", "memory", "cms", "ffn")


@dataclass(frozen=True)
class Prediction:
    byte: int  # the most likely next byte
    probability: float
    loss: float | None  # of the byte that came next (None at the run's last token)


@dataclass(frozen=True)
class WindowView:
    token: int  # index in the run
    position: int  # stream position
    layers: tuple[int, ...]  # layers with attention
    weights: tuple[np.ndarray, ...]  # per attention layer [heads, keys]
    key_positions: tuple[int | None, ...]  # None: a persistent token
    key_labels: tuple[str, ...]  # each key's character ("earlier run" before the recording's start)
    updates: dict[int, dict[str, float]]  # layer -> branch -> norm of its residual addition at the token
    with_memory: Prediction
    without_memory: Prediction | None  # the memory's read off for this token (None: no memory ran)

    @property
    def oldest_attended(self) -> int:
        """The earliest stream position attention reads at this token."""
        return min(p for p in self.key_positions if p is not None)


def _prediction(logits: torch.Tensor, next_byte: int | None) -> Prediction:
    log_probs = logits.float().log_softmax(-1)
    best = int(log_probs.argmax())
    loss = None if next_byte is None else float(-log_probs[next_byte])
    return Prediction(best, float(log_probs[best].exp()), loss)


def window_view(model: HopeTransformer, recording: Recording, start_state: HopeState | None, t: int) -> WindowView:
    """The view at token ``t`` (0-based in the run) of ``recording``, which ``model`` read from ``start_state``
    (None: a fresh memory) with the recording's switches."""
    if not 0 <= t < recording.n_tokens:
        raise IndexError(f"token {t} is outside this run (0..{recording.n_tokens - 1})")
    ablation = recording.ablation
    tokens = recording.tokens.to(model.device)[None]
    lm = model.config.cms_objective == "lm" and bool(model.config.cms_periods)
    # an lm model's CMS levels learned from the text's next tokens as the run read it: so does the prefix
    # (autograd for their gradient, hence no_grad rather than inference_mode)
    with torch.no_grad() if lm else torch.inference_mode():
        state = start_state
        if t > 0:
            state = model(tokens[:, :t], state=state, ablation=ablation, targets=tokens[:, 1:t + 1] if lm else None).state
        out = model(tokens[:, t:t + 1], state=state, ablation=ablation, trace=True, trace_attention=True)
        memory_ran = ablation.memory and any(layer.memory is not None for layer in out.trace.layers)
        off = model(tokens[:, t:t + 1], state=state, ablation=replace(ablation, memory=False)) if memory_ran else None
    next_byte = int(recording.tokens[t + 1]) if t + 1 < recording.n_tokens else None
    layers = tuple(i for i, layer in enumerate(out.trace.layers) if layer.attention_weights is not None)
    weights = tuple(out.trace.layers[i].attention_weights[0, :, 0].float().cpu().numpy() for i in layers)
    position = recording.start_position + t
    n_keys = weights[0].shape[-1] if weights else 0
    n_persistent = model.config.n_persistent_tokens if ablation.persistent_tokens and n_keys else 0
    window = n_keys - n_persistent  # the cached keys and the token itself
    key_positions = (None,) * n_persistent + tuple(range(position - window + 1, position + 1))
    ids = recording.tokens.tolist()
    label = lambda p: ("persistent" if p is None else
                       plotly_label(ByteTokenizer.token_label(ids[p - recording.start_position]))
                       if p >= recording.start_position else "earlier run")
    updates = {i: {name: float(norm[0, 0]) for name, norm in layer.residual_updates.items()}
               for i, layer in enumerate(out.trace.layers) if layer.residual_updates}
    return WindowView(t, position, layers, weights, key_positions, tuple(label(p) for p in key_positions), updates,
                      _prediction(out.logits[0, 0], next_byte),
                      _prediction(off.logits[0, 0], next_byte) if off is not None else None)


def window_figure(view: WindowView) -> go.Figure:
    """One heatmap per attention layer: heads by the keys attention can read at the token, weight 0..1."""
    rows = max(1, len(view.layers))
    fig = make_subplots(rows=rows, cols=1, shared_xaxes=True, vertical_spacing=0.12,
                        subplot_titles=[f"layer {i}: attention weights" for i in view.layers] or ["no attention"])
    columns = list(range(len(view.key_positions)))
    ticks = [f"p{j}" if p is None else f"{p}<br>{c}" for j, (p, c) in enumerate(zip(view.key_positions, view.key_labels))]
    hover = [["persistent token" if p is None else f"position {p} '{c}'" for p, c in zip(view.key_positions, view.key_labels)]]
    for row, (layer, w) in enumerate(zip(view.layers, view.weights), 1):
        fig.add_trace(go.Heatmap(z=w.astype(np.float32), x=columns, y=[f"head {h}" for h in range(w.shape[0])],
                                 zmin=0, zmax=1, colorscale="Blues", showscale=row == 1,
                                 customdata=np.array(hover * w.shape[0], dtype=object),
                                 hovertemplate="%{y}, %{customdata}: weight %{z:.3f}<extra></extra>"), row=row, col=1)
    fig.update_xaxes(tickmode="array", tickvals=columns, ticktext=ticks, row=rows, col=1)
    fig.update_layout(height=140 + 110 * rows, margin=dict(l=10, r=10, t=40, b=50))
    return fig


def explain(view: WindowView, window: int | None) -> str:
    """One line on what reaches the token and what the memory's read is worth at it."""
    reach = (f"Attention reads positions {view.oldest_attended}-{view.position}" if view.layers
             else "No attention ran at this token")
    if view.layers and window is not None:
        reach += f" (its window of {window}); anything older reaches position {view.position} only through the memory and the CMS"
    line = reach + "."
    p, q = view.with_memory, view.without_memory
    byte = lambda b: ByteTokenizer.token_label(b)
    if q is None:
        return line
    guesses = f"best guess '{byte(p.byte)}' {p.probability:.0%}, without the memory's read '{byte(q.byte)}' {q.probability:.0%}"
    if p.loss is not None and q.loss is not None:
        return line + (f" The byte that came next costs {p.loss:.2f} nats with the memory's read and {q.loss:.2f} "
                       f"without it ({guesses}).")
    return line + f" The next byte's {guesses}."


def updates_table(view: WindowView) -> list[dict]:
    """Rows per layer: how large each branch's addition to the residual stream is at the token."""
    return [{"layer": layer, **{name: branches.get(name, math.nan) for name in BRANCHES}}
            for layer, branches in sorted(view.updates.items())]

