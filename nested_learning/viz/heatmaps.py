"""Heatmaps of fast weights: a memory M_t and its change M_t - M_{t-1}, CMS level weights, and A/B/B-A
panels with shared scales. Diverging colours centred on zero with symmetric limits, so equal colours
mean equal values across panels that share a limit."""
from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
import torch
from plotly.subplots import make_subplots

DIVERGING = "RdBu_r"  # red positive, blue negative, white zero


def as_array(matrix) -> np.ndarray:
    if isinstance(matrix, torch.Tensor):
        matrix = matrix.detach().double().cpu().numpy()
    return np.asarray(matrix, dtype=float)


def symmetric_limit(*matrices) -> float:
    """max |value| over all matrices (non-finite values ignored); a tiny positive floor keeps an all-zero
    panel drawable."""
    peak = 0.0
    for m in matrices:
        a = as_array(m)
        a = a[np.isfinite(a)]
        if a.size:
            peak = max(peak, float(np.abs(a).max()))
    return peak if peak > 0 else 1e-12


def heatmap_trace(matrix, limit: float, name: str, colorbar_x: float | None = None,
                  x_title: str = "key dim", y_title: str = "value dim") -> go.Heatmap:
    # float32: half the bytes of float64 on the wire (base64 typed arrays), more digits than a colour shows
    return go.Heatmap(z=as_array(matrix).astype(np.float32), zmin=-limit, zmax=limit, zmid=0, colorscale=DIVERGING, name=name,
                      colorbar=dict(x=colorbar_x, len=0.9, thickness=10) if colorbar_x is not None else None,
                      hovertemplate=f"{name}<br>{y_title} %{{y}}, {x_title} %{{x}}<br>%{{z:.4g}}<extra></extra>")


def _squarish(matrix) -> bool:
    """Square cells only for a matrix at most twice as wide as tall: a memory with DPFP keys (128 x 1,024)
    drawn with square cells is a thin strip."""
    rows, cols = np.shape(matrix)[:2]
    return cols <= 2 * rows


def _panels(panels: list[tuple[str, object, float]], height: int, x_title: str, y_title: str) -> go.Figure:
    """One row of heatmaps; each panel is (title, matrix, limit). Panels with the same limit share a scale."""
    n = len(panels)
    # A scrub draws two one-panel figures, and make_subplots would be its slowest step: a plain figure then.
    fig = go.Figure() if n == 1 else make_subplots(rows=1, cols=n, subplot_titles=[p[0] for p in panels],
                                                   horizontal_spacing=0.16)
    for i, (title, matrix, limit) in enumerate(panels):
        axis = str(i + 1) if i else ""
        domain_end = fig.layout[f"xaxis{axis}"].domain[1] if n > 1 else 1.0
        trace = heatmap_trace(matrix, limit, title, colorbar_x=domain_end + 0.01, x_title=x_title, y_title=y_title)
        fig.add_trace(trace.update(xaxis=f"x{axis}", yaxis=f"y{axis}"))
        # row 0 at the top, like a matrix; square cells unless too wide; the axes say what rows and columns are
        fig.layout[f"yaxis{axis}"].update(autorange="reversed", scaleanchor=f"x{axis}" if _squarish(matrix) else None,
                                          title_text=y_title if i == 0 else None)
        fig.layout[f"xaxis{axis}"].update(title_text=x_title)
    if n == 1:
        fig.update_layout(title=dict(text=panels[0][0], x=0.5, xanchor="center", font=dict(size=16)))
    fig.update_layout(height=height, margin=dict(l=10, r=40, t=40, b=40))
    return fig


def memory_figures(memory, delta, token_label: str = "", symbol: str = "M", rows: str = "value dim",
                   columns: str = "key dim") -> tuple[go.Figure, go.Figure]:
    """M_t and M_t - M_{t-1} of one head, each its own figure on its own symmetric scale (side by side in
    page columns, which stack on a phone). ``symbol``, ``rows``, ``columns``: the matrix's names
    (``player.matrix_names``: the 2-layer memory's W1 and W2 have hidden units on one side)."""
    suffix = f" after {token_label}" if token_label else ""
    x_title, y_title = columns.replace(" dim", " dimension"), rows.replace(" dim", " dimension")
    return (_panels([(f"{symbol}_t{suffix}", memory, symmetric_limit(memory))], 400, x_title, y_title),
            _panels([(f"{symbol}_t - {symbol}_(t-1)", delta, symmetric_limit(delta))], 400, x_title, y_title))


def cms_level_schedule(period: int, start: int, t: int) -> str:
    """How often a level of ``period`` has updated in a recording starting at stream position ``start``, by
    its token ``t``, and at which of its tokens it next updates (a slow level is still for hundreds of tokens)."""
    done = (start + t + 1) // period - start // period
    upcoming = ((start + t + 1) // period + 1) * period - 1 - start
    return f"{done:,} update{'' if done == 1 else 's'} in this run so far, next after token {upcoming:,}"


def cms_figure(weights: list, periods: tuple[int, ...], title: str = "W", start: int | None = None,
               t: int | None = None) -> go.Figure:
    """One panel per CMS level, weights [D, h] drawn as [h, D] (wide), each on its own symmetric scale; with
    the recording's ``start`` position and the token ``t``, each title says how often its level has updated."""
    schedule = lambda p: "" if t is None else ": " + cms_level_schedule(p, start or 0, t)
    panels = [(f"{title} level {j} (period {p:,}{schedule(p)})", as_array(w).T, symmetric_limit(w))
              for j, (w, p) in enumerate(zip(weights, periods))]
    fig = make_subplots(rows=len(panels), cols=1, subplot_titles=[p[0] for p in panels], vertical_spacing=0.08)
    for i, (name, matrix, lim) in enumerate(panels):
        domain = fig.layout[f"yaxis{i + 1 if i else ''}"].domain
        trace = heatmap_trace(matrix, lim, name, x_title="model dim", y_title="hidden unit")
        trace.colorbar = dict(y=(domain[0] + domain[1]) / 2, len=domain[1] - domain[0], thickness=10)
        fig.add_trace(trace, row=i + 1, col=1)
        fig.update_yaxes(autorange="reversed", row=i + 1, col=1)
    fig.update_layout(height=150 + 150 * len(panels), margin=dict(l=10, r=40, t=40, b=10))
    return fig


def ab_figure(a, b, label_a: str = "A", label_b: str = "B", what: str = "M_t") -> go.Figure:
    """A and B on one shared symmetric scale, and B - A on its own."""
    shared = symmetric_limit(a, b)
    diff = as_array(b) - as_array(a)
    return _panels([(f"{what} {label_a}", a, shared), (f"{what} {label_b}", b, shared),
                    (f"{label_b} - {label_a}", diff, symmetric_limit(diff))], 360, "key dimension", "value dimension")
