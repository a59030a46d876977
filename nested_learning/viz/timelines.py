"""Timelines of one run on a shared token axis (stream positions): per-token loss; surprise, learning
rate and retention of every memory head (one heatmap row per layer and head); and CMS level updates
as a raster (one row per layer and level, marker area = update norm)."""
from __future__ import annotations

import math
import re

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from ..recording import Recording
from ..tokenizer import ByteTokenizer
from .safe_text import VISIBLE_SPACE, plotly_label

MEMORY_ROWS = (("surprise", "surprise ||v - M k||", "Oranges"), ("learning_rate", "learning rate", "Blues"),
               ("retention", "retention", "Greens"))


def token_labels(recording: Recording) -> list[str]:
    """Printable, Plotly-safe label per token (hover text): the ``token`` column of ``token_frame``."""
    return [plotly_label(ByteTokenizer.token_label(i)) for i in recording.tokens.tolist()]


def _head_matrix(recording: Recording, stream: str, all_heads: bool = True) -> tuple[np.ndarray, list[str]]:
    """[layers x heads, T] of one memory stream with row names; or, without ``all_heads``, one row per
    layer: the mean over its heads."""
    rows, names = [], []
    for layer in recording.memory_layers:
        values = recording.memory_stream(layer, stream).double().numpy()  # [T, H]
        if not all_heads:
            rows.append(values.mean(1))
            names.append(f"L{layer} mean")
            continue
        for head in range(values.shape[1]):
            rows.append(values[:, head])
            names.append(f"L{layer} H{head}")
    return np.array(rows), names


# A timeline panel is about 1,200 px wide: a longer run is drawn in bins of consecutive tokens, each
# reduced so that a one-token spike survives (surprise and learning rate: the bin's largest value;
# retention: its smallest; loss: its range, drawn as a vertical stroke).
MAX_TIMELINE_COLUMNS = 1200
BIN_REDUCTIONS = {"surprise": np.fmax, "learning_rate": np.fmax, "retention": np.fmin}


def token_bin(n_tokens: int) -> int:
    """Tokens per drawn column (1 up to MAX_TIMELINE_COLUMNS tokens)."""
    return max(1, -(-n_tokens // MAX_TIMELINE_COLUMNS))


def binned(values: np.ndarray, size: int, reduce=np.fmax) -> np.ndarray:
    """[..., T] -> [..., ceil(T / size)]: ``reduce`` over each bin of ``size`` tokens (NaN-ignoring)."""
    if size == 1:
        return values
    return reduce.reduceat(values, np.arange(0, values.shape[-1], size), axis=-1)


def stream_range(recording: Recording, stream: str, z: np.ndarray) -> tuple[float, float, bool]:
    """(zmin, zmax, clipped) for a memory stream's colour scale: bounded streams on their physical range
    (learning rate 0..max_learning_rate, retention min_retention..1), so an exact 0 or 1 looks like one;
    surprise from 0 to its maximum, or to its 99th percentile when the maximum is more than twice that
    (a few outliers would flatten the rest; ``clipped`` is then True and the panel says so)."""
    config = recording.config
    if stream == "learning_rate":
        return 0.0, float(config.max_learning_rate), False
    if stream == "retention":
        return float(config.min_retention), 1.0, False
    finite = z[np.isfinite(z)]
    if finite.size == 0:
        return 0.0, 1.0, False
    top, peak = float(np.percentile(finite, 99)), float(finite.max())
    if top > 0 and peak > 2 * top:
        return 0.0, top, True
    return 0.0, peak if peak > 0 else 1.0, False


def _colorbar(fig: go.Figure, row: int) -> dict:
    domain = fig.layout[f"yaxis{row if row > 1 else ''}"].domain
    return dict(y=(domain[0] + domain[1]) / 2, len=(domain[1] - domain[0]) * 1.05, thickness=10)


# Invisible click points per panel: every token while the text is on the axis (MAX_TEXT_TICKS); beyond,
# evenly spaced (each SVG marker costs the browser, and a panel is about 800 px wide).
MAX_CLICK_TARGETS = 160


def _click_target(positions: np.ndarray, y, loss_hover: tuple | None = None) -> go.Scatter:
    """Invisible points across a panel, one per token up to MAX_CLICK_TARGETS (else every k-th token, so a
    click lands within k/2 tokens; the slider does the rest): heatmaps and line-only traces cannot be
    selected, so without them a click would not scrub (with x-unified hover a click anywhere on the panel
    picks the nearest point). No hover label of their own: the panel's trace says it all. ``y``: the
    points' heights, or one row (a name or a number) for a heatmap or raster panel. ``loss_hover``
    (characters, loss) gives the points the loss panel's hover when its line is binned and has none."""
    step = -(-len(positions) // MAX_CLICK_TARGETS)
    positions = positions[::step]
    y = [y] * len(positions) if np.ndim(y) == 0 else np.asarray(y)[::step]
    hidden = dict(marker=dict(opacity=0))
    hover = dict(hoverinfo="none")
    if loss_hover is not None:  # a binned loss panel: its points name their token and its loss
        characters, loss = loss_hover
        hover = dict(customdata=np.stack([np.asarray(characters, dtype=object)[::step], loss[::step]], -1),
                     hovertemplate="position %{x} '%{customdata[0]}'<br>loss %{customdata[1]:.3f}<extra></extra>")
    return go.Scatter(x=positions, y=y, mode="markers", marker=dict(opacity=0, size=4), showlegend=False,
                      name="click target", selected=hidden, unselected=hidden, **hover)


def raster_rows(recording: Recording) -> list[tuple[int, int]]:
    """(layer, level) of each raster row, top to bottom."""
    return [(layer, level) for layer in recording.cms_layers for level in range(len(recording.config.cms_periods))]


def raster_trace(events: pd.DataFrame, start_position: int, rows: list[tuple[int, int]]) -> go.Scatter:
    """CMS update events as markers at (position, row of (layer, level)), area proportional to the update norm.
    Rows are numbers (labelled by the axis ticks): thousands of category strings would slow the figure down."""
    norms = events["update_norm"].to_numpy(dtype=float)
    peak = float(np.nanmax(norms)) if len(norms) else 1.0
    index = {row: i for i, row in enumerate(rows)}
    y = np.array([index[(l, v)] for l, v in zip(events["layer"].tolist(), events["level"].tolist())], dtype=float)
    return go.Scatter(
        x=events["token_index"].to_numpy() + start_position, y=y, mode="markers", name="CMS updates",
        marker=dict(size=np.nan_to_num(norms), sizemode="area", sizeref=2.0 * max(peak, 1e-12) / 9 ** 2, sizemin=1.5, opacity=0.75,
                    color=events["level"].to_numpy(), colorscale="Viridis", showscale=False, line=dict(width=0)),
        customdata=np.stack([norms, events["objective_before"].to_numpy(float), events["objective_after"].to_numpy(float)], -1)
        if len(events) else None,
        hovertemplate="position %{x}<br>update norm %{customdata[0]:.4g}<br>"
                      "objective %{customdata[1]:.4g} -> %{customdata[2]:.4g}<extra></extra>")


def raster_heatmap(events: pd.DataFrame, recording: Recording, rows: list[tuple[int, int]], size: int) -> go.Heatmap:
    """CMS update events binned like the other panels: one row per (layer, level), each bin's largest
    update norm (blank where the level did not update); for runs too long for a marker per event."""
    columns = -(-recording.n_tokens // size)
    z = np.full((len(rows), columns), np.nan)
    index = {row: i for i, row in enumerate(rows)}
    row = np.array([index[(l, v)] for l, v in zip(events["layer"].tolist(), events["level"].tolist())], dtype=int)
    column = events["token_index"].to_numpy(dtype=int) // size
    np.fmax.at(z, (row, column), events["update_norm"].to_numpy(dtype=float))
    positions = recording.start_position + np.arange(columns) * size
    return go.Heatmap(z=z.astype(np.float32), x=positions, y=np.arange(len(rows)), colorscale="Viridis", showscale=False,
                      name="CMS updates", hovertemplate=f"positions %{{x}} (+{size - 1})<br>largest update norm %{{z:.4g}}<extra></extra>")


# Past this many events the raster is a binned heatmap: each SVG marker costs the browser.
MAX_RASTER_MARKERS = 2000
MAX_BANDS = 200  # repeat bands drawn; more would slow the figure and hide the data
MAX_TEXT_TICKS = MAX_CLICK_TARGETS  # up to this many tokens the token axis shows the text, one character per token


def text_ticks(recording: Recording) -> dict:
    """The token axis's ticks: every token's character for a short run (a space shows as a middle dot,
    so it is visible), else plain positions (the characters are in the hover)."""
    if recording.n_tokens > MAX_TEXT_TICKS:
        return dict(title_text="token position in the stream")
    labels = [VISIBLE_SPACE if label == " " else label for label in token_labels(recording)]
    return dict(tickvals=list(range(recording.start_position, recording.start_position + recording.n_tokens)),
                ticktext=labels, tickangle=0, tickfont=dict(family="monospace", size=11),
                title_text="the text, one character per token (hover for its position)")


def timeline_figure(recording: Recording, events: pd.DataFrame | None = None, repeats: list | None = None,
                    all_heads: bool = True) -> go.Figure:
    """The run's timelines. ``events`` = ``recording.cms_events()`` adds the raster row (None leaves it out,
    so the rest can be shown before the events are derived). ``repeats`` (viz.repeats.find_repeats) are
    drawn as green bands across every panel, each repeat's source as a grey one. Without ``all_heads``
    the memory panels show one row per layer, the mean over its heads (the readable first view). No cursor:
    the memory player marks the token, so a scrub never redraws the timelines."""
    positions = np.arange(recording.n_tokens) + recording.start_position
    size = token_bin(recording.n_tokens)
    columns = positions[::size]  # each drawn column's first token
    has_memory = bool(recording.memory_layers)
    has_cms = events is not None and bool(recording.cms_layers)
    titles = ["next-token loss (nats)"]
    heights = [1.0]
    if has_memory:
        n_rows = len(recording.memory_layers) * (recording.config.n_memory_heads if all_heads else 1)
        titles += [title for _, title, _ in MEMORY_ROWS]
        heights += [max(1.0, n_rows / 8)] * 3
    if has_cms:
        titles.append("CMS level updates (marker area = update norm)")
        heights.append(max(1.0, len(recording.cms_layers) * len(recording.config.cms_periods) / 8))
    fig = make_subplots(rows=len(titles), cols=1, shared_xaxes=True, subplot_titles=titles, row_heights=heights,
                        vertical_spacing=0.22 / len(titles))
    loss = recording.stream("loss").double().numpy()
    characters = token_labels(recording)
    if size == 1:
        fig.add_trace(go.Scatter(x=positions, y=loss.astype(np.float32), mode="lines", name="loss", line=dict(width=1.2),
                                 customdata=characters,
                                 hovertemplate="position %{x} '%{customdata}'<br>loss %{y:.3f}<extra></extra>"), row=1, col=1)
    else:  # each bin a vertical stroke from its lowest to its highest loss: spikes survive
        low, high = binned(loss, size, np.fmin), binned(loss, size, np.fmax)
        # No hover of its own: a click selects the first hovered point, which must be a click target.
        fig.add_trace(go.Scatter(x=np.repeat(columns, 2), y=np.stack([low, high], 1).ravel().astype(np.float32),
                                 mode="lines", name="loss", line=dict(width=1), hoverinfo="skip"), row=1, col=1)
    targets = [(_click_target(positions, np.nan_to_num(loss, nan=0.0, posinf=0.0, neginf=0.0),
                              None if size == 1 else (characters, loss)), 1)]
    row = 1
    if has_memory:
        for stream, title, scale in MEMORY_ROWS:
            row += 1
            z, names = _head_matrix(recording, stream, all_heads)
            low, high, clipped = stream_range(recording, stream, z)
            if clipped:  # say so in the panel's title
                fig.layout.annotations[row - 1].text = f"{title} (colour scale capped at the 99th percentile, {high:.3g})"
            hover = (f"position %{{x}} '%{{customdata}}', %{{y}}<br>{title} %{{z:.4g}}" if size == 1 else
                     f"positions %{{x}} (+{size - 1}), %{{y}}<br>{title} %{{z:.4g}} ({'lowest' if stream == 'retention' else 'highest'})")
            fig.add_trace(go.Heatmap(z=binned(z, size, BIN_REDUCTIONS[stream]).astype(np.float32), x=columns, y=names,
                                     colorscale=scale, name=title, zmin=low, zmax=high, colorbar=_colorbar(fig, row),
                                     customdata=[characters] * len(names) if size == 1 else None,
                                     hovertemplate=hover + "<extra></extra>"), row=row, col=1)
            targets.append((_click_target(positions, names[len(names) // 2]), row))
            fig.update_yaxes(autorange="reversed", row=row, col=1)
    if has_cms:
        row += 1
        rows = raster_rows(recording)
        dense = len(events) > MAX_RASTER_MARKERS
        fig.add_trace(raster_heatmap(events, recording, rows, size) if dense else
                      raster_trace(events, recording.start_position, rows), row=row, col=1)
        targets.append((_click_target(positions, float(len(rows) // 2)), row))  # the raster's gaps scrub too
        periods = recording.config.cms_periods
        fig.update_yaxes(tickvals=list(range(len(rows))), ticktext=[f"L{l} P{periods[v]}" for l, v in rows],
                         autorange="reversed", row=row, col=1)
    for target, target_row in targets:  # after the panels' own traces, which keep their indices
        fig.add_trace(target, row=target_row, col=1)
    # One paper-high rectangle per band (the x axes are shared): add_vrect per subplot is 10x slower.
    p0 = recording.start_position
    shapes = [dict(type="rect", xref="x", yref="paper", x0=p0 + start - 0.5, x1=p0 + start + r.length - 0.5,
                   y0=0, y1=1, fillcolor=color, opacity=0.12, line_width=0, layer="below")
              for r in (repeats or [])[:MAX_BANDS] for start, color in ((r.source, "gray"), (r.start, "green"))]
    fig.update_layout(shapes=shapes)
    fig.update_xaxes(row=len(titles), col=1, **text_ticks(recording))
    # Hover and click by token position: every panel's value at that token, and a click anywhere on a
    # panel selects the token (the page scrubs to it).
    fig.update_layout(height=220 + 130 * sum(heights), showlegend=False, margin=dict(l=10, r=60, t=40, b=40),
                      hovermode="x unified", clickmode="event+select", dragmode="zoom")
    return fig


def stream_row(recording: Recording, stream: str, layer: int) -> np.ndarray:
    """Mean over heads of one memory stream of a layer, [T] (for text colouring)."""
    return recording.memory_stream(layer, stream).double().mean(1).numpy()


def mean_surprise(recording: Recording) -> np.ndarray:
    """Surprise per token, the mean over heads and memory layers, [T] (NaN without a memory)."""
    layers = [stream_row(recording, "surprise", i) for i in recording.memory_layers]
    return np.mean(layers, axis=0) if layers else np.full(recording.n_tokens, np.nan)


def token_summary(recording: Recording, t: int) -> str:
    """One line on token ``t``: its loss and, per memory layer, mean surprise, learning rate and retention
    over heads; the CMS levels that updated at it (from the cached events when they are derived)."""
    loss = float(recording.stream("loss")[t])
    parts = [f"loss {loss:.3f}" if np.isfinite(loss) else "loss n/a (no next token)"]
    for layer in recording.memory_layers:
        values = [float(recording.memory_stream(layer, name)[t].double().mean())
                  for name in ("surprise", "learning_rate", "retention")]
        parts.append(f"L{layer}: surprise {values[0]:.3g}, lr {values[1]:.3g}, retention {values[2]:.3g}")
    if recording.events_ready:
        events = recording.cms_events()
        fired = events[events["token_index"] == t]
        parts.append("CMS updated: " + (", ".join(f"L{l} level {v}" for l, v in zip(fired["layer"], fired["level"]))
                                         if len(fired) else "none"))
    return "; ".join(parts) + "."


def clicked_positions(event) -> tuple[int, ...]:
    """The stream positions a chart selection event holds (Streamlit's on_select), sorted: the clicked
    points, or else the first position inside each dragged box; () for none."""
    selection = (event or {}).get("selection") or {}
    points = {int(round(float(p["x"]))) for p in selection.get("points") or [] if isinstance(p, dict) and "x" in p}
    if not points:
        points = {int(math.ceil(min(float(x) for x in box["x"]))) for box in selection.get("box") or []
                  if isinstance(box, dict) and box.get("x")}
    return tuple(sorted(points))


def overlay_streams(recording: Recording) -> Recording:
    """What :func:`overlay_figure` reads of a recording (tokens, loss, the memories' surprise): a loaded file's
    few KB kept instead of its MB of memory factors."""
    kept = {name: t for name, t in recording.tensors.items()
            if name in ("tokens", "loss") or re.fullmatch(r"layers\.\d+\.memory\.surprise", name)}
    return Recording(recording.config, kept, recording.text, recording.ablation, recording.start_position, recording.meta)


def span_start(recording: Recording, span: str) -> int | None:
    """The index in the run of the first token of ``span``'s first occurrence (UTF-8 bytes), else None."""
    needle = span.encode("utf-8")
    if not needle:
        return None
    found = bytes(recording.tokens.tolist()).find(needle) if recording.config.vocab_size <= 256 else -1
    return found if found >= 0 else None


def overlay_figure(recordings: dict[str, Recording], align_on: str = "") -> go.Figure:
    """Loss, and mean surprise when there is a memory, of several runs on one axis: the token's index in
    its run (runs start at different stream positions); with ``align_on``, tokens counted from the first
    occurrence of that text in each run (a run without it is left out, and named in the title)."""
    starts = {name: span_start(rec, align_on) if align_on else 0 for name, rec in recordings.items()}
    missing = [name for name, start in starts.items() if start is None]
    recordings = {name: rec for name, rec in recordings.items() if starts[name] is not None}
    has_memory = any(r.memory_layers for r in recordings.values())
    title = "next-token loss (nats)" + (f"; without the text: {', '.join(missing)}" if missing else "")
    fig = make_subplots(rows=2 if has_memory else 1, cols=1, shared_xaxes=True, vertical_spacing=0.1,
                        subplot_titles=[plotly_label(title)] + (["mean surprise (memory layers and heads)"] if has_memory else []))
    for i, (name, rec) in enumerate(recordings.items()):
        color = f"hsl({(i * 137) % 360}, 60%, 45%)"
        x = np.arange(rec.n_tokens) - starts[name]
        fig.add_trace(go.Scatter(x=x, y=rec.stream("loss").double().numpy(), mode="lines", name=plotly_label(name),
                                 line=dict(width=1.2, color=color), legendgroup=name), row=1, col=1)
        if has_memory and rec.memory_layers:
            fig.add_trace(go.Scatter(x=x, y=mean_surprise(rec), mode="lines", name=plotly_label(name), showlegend=False,
                                     line=dict(width=1.2, color=color), legendgroup=name), row=2, col=1)
    axis = "tokens from the start of the aligned text" if align_on else "token index in its run"
    fig.update_xaxes(title_text=axis, row=2 if has_memory else 1, col=1)
    fig.update_layout(height=420 if has_memory else 260, margin=dict(l=10, r=10, t=40, b=40), hovermode="x unified")
    return fig
