"""The run's text as a clickable figure: one cell per character, coloured by a per-token value.

Unlike coloured HTML, a chart has a colour bar, hover that works on touch screens (a tap), and clicks
that the page turns into a scrub (Streamlit's selection events). Lines wrap at spaces, never inside a
word, and break at newlines.
"""
from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from .safe_text import Span, plotly_label

LINE_WIDTH = 80  # characters per line


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


def text_figure(spans: list[Span], value_name: str, start_position: int = 0, width: int = LINE_WIDTH,
                cursor: int | None = None) -> go.Figure:
    """One square per character at (column, line), coloured by its value (0 to the 98th percentile, the
    top 2% saturate; the colour bar says so); the character on top. ``cursor`` (a token index) is
    outlined. The points are in span order, so a clicked point's index is its span."""
    lines = wrap(spans, width)
    column, row = np.zeros(len(spans)), np.zeros(len(spans))
    for y, line in enumerate(lines):
        for x, i in enumerate(line):
            column[i], row[i] = x, y
    values = np.array([s.value for s in spans], dtype=float)
    finite = values[np.isfinite(values)]
    top = float(np.quantile(finite, 0.98)) if finite.size else 1.0
    top = top if top > 0 else 1.0
    where = [f"token {start_position + s.first}" if s.first == s.last else
             f"tokens {start_position + s.first}-{start_position + s.last}" for s in spans]
    labels = [plotly_label("\u00b7" if s.label == " " else s.label) for s in spans]
    outline = [2.5 if cursor is not None and s.first <= cursor <= s.last else 0 for s in spans]
    fig = go.Figure(go.Scatter(
        x=column, y=row, mode="markers+text", text=labels, textfont=dict(family="monospace", size=13),
        marker=dict(symbol="square", size=17, color=np.nan_to_num(values, nan=0.0), cmin=0, cmax=top,
                    opacity=np.where(np.isfinite(values), 1.0, 0.25),  # no value (the last token's loss): faint
                    colorscale="Oranges", line=dict(width=outline, color="black"),
                    colorbar=dict(title=dict(text=value_name, side="right"), thickness=10,
                                  ticksuffix="", len=1.0)),
        customdata=np.stack([np.array(where, dtype=object), values], -1) if spans else None,
        hovertemplate="%{customdata[0]} '%{text}'<br>" + value_name + " %{customdata[1]:.3f}<extra></extra>"))
    fig.update_xaxes(visible=False, range=[-1, width], fixedrange=True)
    fig.update_yaxes(visible=False, autorange="reversed", fixedrange=True)
    fig.update_layout(height=40 + 24 * max(len(lines), 1), margin=dict(l=4, r=4, t=4, b=4), showlegend=False,
                      clickmode="event+select", dragmode=False, plot_bgcolor="rgba(0,0,0,0)")
    return fig


def clicked_token(event, spans: list[Span]) -> int | None:
    """The token index (the first byte of the clicked character) of a selection event on ``text_figure``."""
    points = ((event or {}).get("selection") or {}).get("points") or []
    for point in points:
        index = point.get("point_index", point.get("point_number")) if isinstance(point, dict) else None
        if isinstance(index, int) and 0 <= index < len(spans):
            return spans[index].first
    return None
