"""A/B comparison of two runs on the same text: a summary table, per-token timelines with B - A, and
memory panels on shared scales."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from ..ablation import Ablation
from ..model import HopeTransformer
from ..recording import Recording
from .heatmaps import ab_figure
from .presets import recall_accuracy
from .timelines import stream_row
from .guard import RunRefused, guarded_record
from .session import MAX_RUN_TOKENS


def b_options(presets, shipped: bool, uploaded: bool, current_kind: str, checkpoints=(), current_name: str = "") -> list[str]:
    """What B can run: "same" (the current model), "shipped" and "upload" when they exist and are not the
    current model already, the other shipped checkpoints ("checkpoint:<file name>": the baseline, trained
    variants) and a random-init model of every preset ("preset:<name>")."""
    return (["same"] + (["shipped"] if shipped and current_kind != "shipped" else [])
            + (["upload"] if uploaded and current_kind != "upload" else [])
            + [f"checkpoint:{name}" for name in checkpoints if (current_kind, current_name) != ("checkpoint", name)]
            + [f"preset:{name}" for name in presets])


def b_source(option: str) -> tuple[str, str]:
    """(kind, name) of the model B option names: ("same", ""), ("upload", ""), ("shipped", ""),
    ("checkpoint", file name) or ("preset", name)."""
    for kind in ("preset", "checkpoint"):
        if option.startswith(kind + ":"):
            return kind, option.split(":", 1)[1]
    return option, ""


def b_label(option: str, shipped_name: str = "", notes: dict | None = None) -> str:
    kind, name = b_source(option)
    if kind == "checkpoint":
        note = (notes or {}).get(name)
        return f"the checkpoint {name}" + (f": {note}" if note else "")
    return {"same": "the current model", "shipped": f"the shipped checkpoint ({shipped_name})",
            "upload": "your uploaded checkpoint"}.get(kind, f"random-init '{name}' preset")


SWITCH_LABELS = {"test_time_updates": "test-time updates", "persistent_tokens": "persistent tokens", "cms": "CMS",
                 "ffn": "feed-forward", "self_modification": "self-modification", "adaptive_lr": "adaptive learning rate"}


def switch_label(name: str) -> str:
    """An ablation switch as people read it ("cms.2" -> "CMS level 2"); links and code keep the names."""
    if name.startswith("cms.") and name[4:].isdigit():
        return f"CMS level {name[4:]}"
    return SWITCH_LABELS.get(name, name.replace("_", " "))


def side_label(ablation: Ablation, option: str, shipped_name: str = "") -> str:
    """B's name in tables and legends: what it switches off and, unless it is the current model, which model."""
    off = [switch_label(name) for name in ablation.names_off()]
    return ("B (" + (", ".join(off) + " off" if off else "all on")
            + (f", {b_label(option, shipped_name)}" if option != "same" else "") + ")")


def run_side(model: HopeTransformer, text: str, ablation: Ablation, side: str = "") -> Recording:
    """One side of a comparison: a fresh memory, so both sides start from the same place. Raises
    RunRefused (naming the side) when the run diverges."""
    try:
        recording, _ = guarded_record(model, text, ablation=ablation, max_tokens=MAX_RUN_TOKENS)
    except RunRefused as e:
        raise RunRefused(f"{side}: {e}" if side else str(e)) from None
    return recording


def summary_table(a: Recording, b: Recording, answers: tuple[int, ...] = ()) -> pd.DataFrame:
    """Rows A, B and B - A: mean loss (nats and bits per byte), mean surprise, recall accuracy on ``answers``."""
    rows = {}
    for label, rec in (("A", a), ("B", b)):
        s = rec.summary()
        accuracy = recall_accuracy(rec.stream("topk.ids")[:, 0], rec.tokens, answers)
        rows[label] = {"mean loss (nats)": s["mean_loss"], "bits per byte": s["bits_per_byte"],
                       "mean surprise": s["mean_surprise"],
                       "recall accuracy": math.nan if accuracy is None else accuracy}
    table = pd.DataFrame.from_dict(rows, orient="index")
    table.loc["B - A"] = table.loc["B"] - table.loc["A"]
    return table


def _layer_surprise(rec: Recording) -> tuple[np.ndarray, list[str]]:
    """[layers, T] mean-over-heads surprise, NaN rows for layers without memory (so A and B line up)."""
    T, n = rec.n_tokens, rec.config.n_layers
    z = np.full((n, T), np.nan)
    for layer in rec.memory_layers:
        z[layer] = stream_row(rec, "surprise", layer)
    return z, [f"L{i}" for i in range(n)]


def compare_timeline(a: Recording, b: Recording) -> go.Figure:
    """Loss of A and B, loss B - A, and mean surprise per layer for A, B (one shared colour scale) and B - A."""
    positions = np.arange(a.n_tokens)
    loss_a, loss_b = (r.stream("loss").double().numpy() for r in (a, b))
    titles = ["next-token loss", "loss B - A", "surprise A (mean over heads)", "surprise B", "surprise B - A"]
    fig = make_subplots(rows=5, cols=1, shared_xaxes=True, subplot_titles=titles, vertical_spacing=0.05)
    fig.add_trace(go.Scatter(x=positions, y=loss_a, name="A", mode="lines", line=dict(width=1.2)), row=1, col=1)
    fig.add_trace(go.Scatter(x=positions, y=loss_b, name="B", mode="lines", line=dict(width=1.2)), row=1, col=1)
    fig.add_trace(go.Bar(x=positions, y=loss_b - loss_a, name="B - A", showlegend=False,
                         marker=dict(color=np.where(loss_b - loss_a > 0, "#d6604d", "#4393c3"), line=dict(width=0))),
                  row=2, col=1)
    (za, names), (zb, _) = _layer_surprise(a), _layer_surprise(b)
    finite = np.concatenate([za[np.isfinite(za)], zb[np.isfinite(zb)]])
    top = float(finite.max()) if finite.size else 1.0
    diff = zb - za
    limit = float(np.nanmax(np.abs(diff))) if np.isfinite(diff).any() else 1.0
    for row, (z, scale, lo, hi) in enumerate(((za, "Oranges", 0, top), (zb, "Oranges", 0, top),
                                              (diff, "RdBu_r", -limit, limit)), start=3):
        # A and B share one colour bar, drawn beside both panels; B - A has its own.
        low_row, high_row = (row, row) if row == 5 else (4, 3)
        bottom, top_edge = fig.layout[f"yaxis{low_row}"].domain[0], fig.layout[f"yaxis{high_row}"].domain[1]
        fig.add_trace(go.Heatmap(z=z, x=positions, y=names, colorscale=scale, zmin=lo, zmax=hi,
                                 zmid=0 if scale == "RdBu_r" else None, showscale=row != 3,
                                 colorbar=dict(y=(bottom + top_edge) / 2, len=top_edge - bottom, thickness=10,
                                               title=dict(text="A and B" if row == 4 else "B - A", side="right")),
                                 hovertemplate="position %{x}, %{y}<br>%{z:.4g}<extra></extra>"), row=row, col=1)
        fig.update_yaxes(autorange="reversed", row=row, col=1)
    fig.update_xaxes(title_text="token index", row=5, col=1)
    fig.update_layout(height=820, margin=dict(l=10, r=60, t=40, b=40), legend=dict(orientation="h", y=1.06))
    return fig


def compare_memory(a: Recording, b: Recording, layer: int, head: int, t: int) -> go.Figure | None:
    """M_t of one head for A and B on a shared scale, and B - A; None when either side has no memory there."""
    shape = lambda c: (c.memory_head_dim, c.memory_key_dim)
    if layer not in a.memory_layers or layer not in b.memory_layers or shape(a.config) != shape(b.config):
        return None
    if a.memory_matrices(layer) != b.memory_matrices(layer):  # a linear M against a 2-layer memory's W1: unlike
        return None
    if head >= min(a.config.n_memory_heads, b.config.n_memory_heads):
        return None
    return ab_figure(a.memory_matrix(layer, head, t), b.memory_matrix(layer, head, t),
                     what=f"M_t (layer {layer}, head {head}, token {t})")
