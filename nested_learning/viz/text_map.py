"""The run's text as a clickable figure: one cell per character, coloured by a per-token value.

Unlike coloured HTML, a chart has a colour bar, hover that works on touch screens (a tap), and clicks
that the page turns into a scrub (Streamlit's selection events). Lines wrap at spaces, never inside a
word, and break at newlines.
"""
from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from .safe_text import VISIBLE_SPACE, Span, plotly_label

LINE_WIDTH = 40  # characters per line: each cell stays wider than a 12 px character on a phone


def wrap(spans: list[Span], width: int = LINE_WIDTH) -> list[list[int]]:
    """Span indices per line: a word (a run of non-space characters) moves to the next line when it would
    cross ``width`` (a word longer than a line is cut); a newline ends its line."""
    lines, line = [], []
    i = 0
    while i < len(spans):
        if spans[i].newline:
            lines.append(line + [i])
            line, i = [], i + 1
            continue
        end = i  # the word starting at i (or one space)
        while end < len(spans) and not spans[end].newline and spans[end].label != " ":
            end += 1
        word = list(range(i, max(end, i + 1)))
        if line and len(line) + len(word) > width:
            lines.append(line)
            line = []
        while len(word) > width:  # longer than a line: cut it
            lines.append(word[:width])
            word = word[width:]
        line += word
        i = word[-1] + 1
    if line:
        lines.append(line)
    return lines


def text_figure(spans: list[Span], value_name: str, start_position: int = 0, width: int = LINE_WIDTH) -> go.Figure:
    """Cells at (column, line) coloured by each character's value (0 to the 98th percentile, the top 2%
    saturate; a character without a value stays blank), drawn as a heatmap so cells fit any screen width,
    and the characters on top as a text trace that carries the hover and the clicks (its points are in
    span order, so a clicked point's index is its span). Drawn once per run and layer: no cursor."""
    lines = wrap(spans, width)
    column, row = np.zeros(len(spans), dtype=int), np.zeros(len(spans), dtype=int)
    for y, line in enumerate(lines):
        for x, i in enumerate(line):
            column[i], row[i] = x, y
    values = np.array([s.value for s in spans], dtype=float)
    finite = values[np.isfinite(values)]
    top = float(np.quantile(finite, 0.98)) if finite.size else 1.0
    top = top if top > 0 else 1.0
    grid = np.full((max(len(lines), 1), width), np.nan)
    grid[row, column] = values
    where = [f"token {start_position + s.first}" if s.first == s.last else
             f"tokens {start_position + s.first}-{start_position + s.last}" for s in spans]
    labels = [plotly_label(VISIBLE_SPACE if s.label == " " else s.label) for s in spans]
    fig = go.Figure(go.Heatmap(z=grid, zmin=0, zmax=top, colorscale="Oranges", hoverinfo="skip", xgap=1, ygap=1,
                               colorbar=dict(title=dict(text=value_name, side="right"), thickness=10)))
    fig.add_trace(go.Scatter(
        x=column, y=row, mode="text", text=labels, textfont=dict(family="monospace", size=12),
        customdata=np.stack([np.array(where, dtype=object), values], -1) if spans else None,
        hovertemplate="%{customdata[0]} '%{text}'<br>" + value_name + " %{customdata[1]:.3f}<extra></extra>"))
    fig.update_xaxes(visible=False, range=[-0.5, width - 0.5], fixedrange=True)
    fig.update_yaxes(visible=False, autorange="reversed", fixedrange=True)
    fig.update_layout(height=40 + 22 * max(len(lines), 1), margin=dict(l=4, r=4, t=4, b=4), showlegend=False,
                      clickmode="event+select", dragmode=False, plot_bgcolor="rgba(0,0,0,0)")
    return fig


def clicked_token(event, spans: list[Span], width: int = LINE_WIDTH) -> int | None:
    """The token index (the first byte of the clicked character) of a selection event on ``text_figure``:
    a point of the text trace (its index is the span's), or a cell of the heatmap (its column and line)."""
    points = ((event or {}).get("selection") or {}).get("points") or []
    cells = None
    for point in points:
        if not isinstance(point, dict):
            continue
        if point.get("curve_number", 1) == 1:
            index = point.get("point_index", point.get("point_number"))
            if isinstance(index, int) and 0 <= index < len(spans):
                return spans[index].first
        elif isinstance(point.get("x"), (int, float)) and isinstance(point.get("y"), (int, float)):
            if cells is None:
                cells = {(x, y): i for y, line in enumerate(wrap(spans, width)) for x, i in enumerate(line)}
            index = cells.get((round(point["x"]), round(point["y"])))
            if index is not None:
                return spans[index].first
    return None
