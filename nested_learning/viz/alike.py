"""Models trained by the shipped model's recipe (or, where the label says so, its `cpu-attention`
variant), measured at every distance (``bench/model_targets.py --only curves,long,written``): which report holds each, the curves as one table, and one figure of them for the
Validate page (docs/results.md "Models trained alike" prints the same reports as a table)."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from .models import ROOT


@dataclass(frozen=True)
class AlikeModel:
    key: str
    label: str  # plain text: a legend entry and a table column
    reports: tuple[str, ...]  # report files under the repository root, read in order (later rows add distances)


SHIPPED = "shipped hope"
ALIKE = (
    AlikeModel("hope", SHIPPED, ("reports/model-targets.json", "reports/model-targets-long.json")),
    AlikeModel("titans", "titans (memory with damped momentum + attention, no self-modification or CMS)",
               ("reports/model-targets-titans.json",)),
    AlikeModel("titans-keys", "titans with Hope's keys (conv, shifted DPFP keys, one head)",
               ("reports/model-targets-titans-keys.json",)),
    AlikeModel("deep", "hope with a 2-layer MLP memory (memory_depth 2)", ("reports/model-targets-hope-deep.json",)),
    AlikeModel("fast-cms", "hope with CMS periods 1, 2, 4, 8 (the earlier default)",
               ("reports/model-targets-hope-fast-cms.json", "reports/model-targets-hope-fast-cms-long.json")),
    AlikeModel("window16", "transformer, window 16 (the baseline)", ("reports/model-targets-transformer-window16.json",)),
    AlikeModel("window512", "transformer, window 512 (state-matched)", ("reports/model-targets-transformer-window512.json",)),
    AlikeModel("window512-attention", "transformer, window 512, 6,000 copy steps (cpu-attention)",
               ("reports/model-targets-transformer-window512-attention.json",)),
    AlikeModel("full", "transformer, full attention", ("reports/model-targets-transformer-full.json",)),
    AlikeModel("full-attention", "transformer, full attention, 6,000 copy steps (cpu-attention)",
               ("reports/model-targets-transformer-full-attention.json",)),
    AlikeModel("titans-undamped", "titans with undamped momentum (the earlier run)",
               ("reports/model-targets-titans-undamped.json",)),
    AlikeModel("lm", "hope learning its CMS levels from the next-token loss (lm objective)",
               ("reports/model-targets-hope-lm.json",)),
)

# measure -> (the report's list of rows, the field that says how far back, the statistic, axis title, as a percentage)
MEASURES = {
    "reread": ("reread", "gap", "ratio_own", "passage reread: second / first reading", False),
    "copy": ("copy", "gap", "own", "32-letter copy: nats a letter", False),
    "recall": ("recall", "pair_distance", "own", "recall of 16 pairs: digits right", True),
    "passkey": ("passkey", "token_distance", "own", "pass key: whole key right", True),
}
COLUMNS = ["model", "label", "measure", "tokens_back", "mean", "ci_low", "ci_high", "report"]


def load_reports(model: AlikeModel, root: Path | None = None) -> list[tuple[str, dict]]:
    """(path, report) of each of ``model``'s report files that exists and reads as JSON (``root``: the
    repository's by default)."""
    root, out = ROOT if root is None else root, []
    for path in model.reports:
        try:
            out.append((path, json.loads((root / path).read_text())))
        except (OSError, ValueError):
            continue
    return out


def curves(models=ALIKE, root: Path | None = None, loaded: dict | None = None) -> pd.DataFrame:
    """One row per model, measure and distance (tokens back; the first report giving a distance wins).
    ``loaded``: each model's (path, report) list already read, by key (else read from ``root``)."""
    rows, seen = [], set()
    for model in models:
        for path, report in (loaded[model.key] if loaded is not None else load_reports(model, root)):
            for measure, (key, field, stat, _, _) in MEASURES.items():
                for entry in report.get(key, []):
                    at = (model.key, measure, entry.get(field))
                    if entry.get(field) is None or stat not in entry or at in seen:
                        continue
                    seen.add(at)
                    value = entry[stat]
                    rows.append([model.key, model.label, measure, int(entry[field]), value["mean"], value["ci_low"],
                                 value["ci_high"], path])
    frame = pd.DataFrame(rows, columns=COLUMNS)
    order = {model.key: i for i, model in enumerate(models)}  # the registry's order, not the alphabet's
    return frame.sort_values(["model", "measure", "tokens_back"], key=lambda c: c.map(order) if c.name == "model" else c,
                             kind="stable", ignore_index=True)


def curves_figure(frame: pd.DataFrame) -> go.Figure:
    """Each measure over distance (log axis), one line per model with its 95% intervals."""
    fig = make_subplots(rows=2, cols=2, subplot_titles=[MEASURES[m][3] for m in MEASURES], vertical_spacing=0.16,
                        horizontal_spacing=0.09)
    order, in_legend = list(dict.fromkeys(frame["label"])), set()
    # Fixed by the model's place in the registry, so a model keeps its colour when others are missing.
    place = {model.label: i for i, model in enumerate(ALIKE)}
    colour = {label: _COLOURS[place.get(label, i) % len(_COLOURS)] for i, label in enumerate(order)}
    for i, (measure, (_, _, _, _, percent)) in enumerate(MEASURES.items()):
        row, col = divmod(i, 2)
        scale = 100.0 if percent else 1.0
        for label in order:
            part = frame[(frame["label"] == label) & (frame["measure"] == measure)]
            if part.empty:
                continue
            fig.add_trace(go.Scatter(
                x=part["tokens_back"], y=part["mean"] * scale, mode="lines+markers", name=label, legendgroup=label,
                showlegend=label not in in_legend, line=dict(color=colour[label], width=3 if label == SHIPPED else 1.5),
                error_y=dict(type="data", symmetric=False, array=(part["ci_high"] - part["mean"]) * scale,
                             arrayminus=(part["mean"] - part["ci_low"]) * scale, thickness=1),
                hovertemplate=f"{label}<br>%{{x:,}} tokens back: %{{y:.3g}}{'%' if percent else ''}<extra></extra>"),
                row=row + 1, col=col + 1)
            in_legend.add(label)
        fig.update_xaxes(type="log", title_text="tokens back", row=row + 1, col=col + 1)
        if percent:
            fig.update_yaxes(range=[0, 102], ticksuffix="%", row=row + 1, col=col + 1)
    # What no memory gives: a reread as dear as the first reading, recall at chance.
    fig.add_hline(y=1.0, line_dash="dot", line_color="#888", annotation_text="as dear as the first reading",
                  annotation_font_size=10, row=1, col=1)
    fig.add_hline(y=10.0, line_dash="dot", line_color="#888", annotation_text="chance", annotation_font_size=10,
                  row=2, col=1)
    fig.update_layout(height=620, margin=dict(l=50, r=20, t=50, b=40),
                      legend=dict(orientation="h", yanchor="top", y=-0.12, x=0))
    return fig


# One per model of ALIKE (a repeated colour would draw a baseline as the shipped model's green).
_COLOURS = ("#1b7837", "#762a83", "#c2a5cf", "#e08214", "#8c510a", "#4d4d4d", "#2166ac", "#92c5de", "#b2182b",
            "#f4a582", "#01665e", "#35978f", "#543005")
