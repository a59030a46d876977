"""The Model page's training curve: nats and bits per byte on their own panels, accuracies on a third,
and a dashed line where each curriculum stage begins (a jump there is the next stage's harder data, not
a divergence). No Streamlit here."""
from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

# Panel title -> words that put a metric column on it ("bpb" before "loss": heldout_bpb is bits).
PANELS = {"bits per byte": ("bpb",), "loss (nats per byte)": ("loss",), "accuracy": ("accuracy",)}
LABELS = {"loss": "training loss", "bpb": "training text", "heldout_bpb": "held-out prose", "lr": "learning rate"}


def label(column: str) -> str:
    return LABELS.get(column, column.replace("_", " "))


def stage_starts(frame: pd.DataFrame) -> list[tuple[float, str]]:
    """(first step, stage name) of each curriculum stage, in step order; empty without a stage column."""
    if frame.empty or "stage" not in frame or "step" not in frame:
        return []
    starts, previous = [], None
    for step, stage in frame[["step", "stage"]].dropna().sort_values("step", kind="stable").itertuples(index=False):
        if stage != previous:
            starts.append((float(step), str(stage)))
            previous = stage
    return starts


def _panels(frame: pd.DataFrame) -> list[tuple[str, list[str]]]:
    taken, panels = set(), []
    for title, words in PANELS.items():
        columns = [c for c in frame.columns if c not in taken and c != "step" and any(w in c for w in words)
                   and pd.api.types.is_numeric_dtype(frame[c])]
        taken.update(columns)
        panels += [(title, columns)] if columns else []
    return panels


def training_figure(frame: pd.DataFrame) -> go.Figure | None:
    """One panel per unit, lines against the step, stage starts marked; None when there is nothing to plot."""
    if frame.empty or "step" not in frame or not (panels := _panels(frame)):
        return None
    fig = make_subplots(rows=len(panels), cols=1, shared_xaxes=True, vertical_spacing=0.08)
    for row, (title, columns) in enumerate(panels, start=1):
        for column in columns:
            points = frame[["step", column]].dropna().sort_values("step")
            fig.add_trace(go.Scatter(x=points["step"], y=points[column], name=label(column), legendgroup=title,
                                     mode="lines+markers" if len(points) < 50 else "lines"), row=row, col=1)
        fig.update_yaxes(title_text=title, row=row, col=1)
    for i, (step, stage) in enumerate(stage_starts(frame)):
        if i:  # the first stage starts the run: no line
            fig.add_vline(x=step, line=dict(color="gray", dash="dash", width=1))
        fig.add_annotation(x=step, y=1.0, yref="paper", yanchor="bottom", xanchor="left", text=stage,
                           showarrow=False, font=dict(size=11, color="gray"))
    fig.update_xaxes(title_text="step", row=len(panels), col=1)
    fig.update_layout(height=240 * len(panels) + 40, margin=dict(l=10, r=10, t=40, b=40))
    return fig
