"""The delta rule at one token, for one layer and head: what the memory predicted for the token's key,
the value it should have returned, the error, and the write

    M_t = a_t M_{t-1} + lr_t (v_t - M_{t-1} k_t) k_t^T

drawn as vectors and matrices on shared colour scales. No Streamlit here.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import torch
from plotly.subplots import make_subplots

from ..recording import Recording
from .player import key_block, pooled


@dataclass(frozen=True)
class Anatomy:
    token: int
    key: np.ndarray  # k_t [dk] (dk = key_expansion x d)
    prediction: np.ndarray  # M_{t-1} k_t [d]
    value: np.ndarray | None  # v_t [d] (None: a recording made without values and a zero learning rate)
    error: np.ndarray | None  # v_t - M_{t-1} k_t [d]
    learning_rate: float
    retention: float
    previous: np.ndarray  # M_{t-1} [d, dk]
    write: np.ndarray  # lr_t (v_t - M_{t-1} k_t) k_t^T [d, dk]
    memory: np.ndarray  # M_t [d, dk]


def anatomy(recording: Recording, layer: int, head: int, t: int) -> Anatomy:
    """The delta rule's parts at token ``t`` (0-based in the run) of one head, from the recording."""
    if layer not in recording.memory_layers:
        raise KeyError(f"layer {layer} has no test-time memory in this recording")
    pick = lambda name: recording.memory_stream(layer, name)[t, head].double()
    key, write_vector = pick("keys"), pick("writes")
    learning_rate, retention = float(pick("learning_rate")), float(pick("retention"))
    previous, memory = recording.memory_matrix(layer, head, t - 1), recording.memory_matrix(layer, head, t)
    prediction = previous @ key
    if recording.has_memory_stream(layer, "values"):
        value = pick("values")
        error = value - prediction
    elif learning_rate > 1e-8:  # older recordings: the error from the write itself
        error = write_vector / learning_rate
        value = prediction + error
    else:
        value = error = None
    to_numpy = lambda x: None if x is None else x.numpy()
    return Anatomy(t, key.numpy(), prediction.numpy(), to_numpy(value), to_numpy(error), learning_rate, retention,
                   previous.numpy(), torch.outer(write_vector, key).numpy(), memory.numpy())


KEY, PREDICTION, VALUE, ERROR = "key k", "returned M k", "value v", "error v - M k"  # row labels, plain
ANATOMY_COLUMNS = 64  # key columns per matrix panel: three panels share the page's width


def anatomy_figure(a: Anatomy) -> go.Figure:
    """Top: k_t (key width); middle: M_{t-1} k_t, v_t and the error as rows (value width); bottom: M_{t-1}
    and M_t on one scale, the write on its own (it is far smaller), diverging and centred on zero. Wide
    keys are averaged in blocks to ANATOMY_COLUMNS columns (a panel has no more pixels)."""
    block = key_block(a.previous.shape[1], ANATOMY_COLUMNS)
    shrink = lambda m: pooled(torch.from_numpy(m), block).numpy().astype(np.float32)
    key_dims = np.arange(0, a.previous.shape[1], block)  # each column: the first key dimension of its block
    fig = make_subplots(rows=3, cols=3, row_heights=[0.1, 0.24, 0.66], vertical_spacing=0.1, horizontal_spacing=0.09,
                        specs=[[{"colspan": 3}, None, None], [{"colspan": 3}, None, None], [{}, {}, {}]],
                        subplot_titles=("the token's key k<sub>t</sub>", "what the memory returned, what it should have, the error",
                                        "memory before, M<sub>t-1</sub>", f"write = {a.learning_rate:.3g} × error × key",
                                        f"after = {a.retention:.3g} × before + write"))
    fig.update_annotations(font_size=13)  # the three bottom titles share the width of one
    rows = [(PREDICTION, a.prediction), (VALUE, a.value), (ERROR, a.error)]
    rows = [(name, vector) for name, vector in rows if vector is not None]
    fig.update_xaxes(showticklabels=False, row=1, col=1)  # index ticks would sit on the titles below; hover names them
    fig.update_xaxes(showticklabels=False, row=2, col=1)
    for row, (vectors, colorbar) in enumerate((([(KEY, a.key)], dict(y=0.95, len=0.12)), (rows, dict(y=0.76, len=0.22))), 1):
        z = np.stack([v for _, v in vectors]).astype(np.float32)
        limit = max(float(np.abs(z).max()), 1e-12)
        fig.add_trace(go.Heatmap(z=z, y=[n for n, _ in vectors], x=np.arange(z.shape[1]), colorscale="RdBu",
                                 reversescale=True, zmin=-limit, zmax=limit, colorbar=dict(**colorbar, thickness=10),
                                 hovertemplate="%{y}[%{x}] = %{z:.4g}<extra></extra>"), row=row, col=1)
    matrices = {name: shrink(m) for name, m in (("memory before", a.previous), ("write", a.write), ("memory after", a.memory))}
    shared = max(float(np.abs(np.stack([matrices["memory before"], matrices["memory after"]])).max()), 1e-12)
    own = max(float(np.abs(matrices["write"]).max()), 1e-12)
    suffix = f" (key dims {block} at a time, their mean)" if block > 1 else ""
    for col, (name, matrix) in enumerate(matrices.items(), start=1):
        limit = own if name == "write" else shared
        fig.add_trace(go.Heatmap(z=matrix, x=key_dims, colorscale="RdBu", reversescale=True, zmin=-limit, zmax=limit,
                                 showscale=col != 1, colorbar=dict(y=0.3, len=0.6, thickness=10, x=0.64 if col == 2 else 1.0),
                                 hovertemplate=f"{name}[%{{y}}, %{{x}}{'..' if block > 1 else ''}] = %{{z:.4g}}<extra></extra>"),
                      row=3, col=col)
        # one value axis, labelled on the left: the write's colour bar sits where the next panel's labels would
        fig.update_yaxes(autorange="reversed", title_text="value dimension" if col == 1 else None,
                         showticklabels=col == 1, row=3, col=col)
        fig.update_xaxes(title_text="key dimension" + (suffix if col == 2 else ""), row=3, col=col)
    fig.update_layout(height=640, margin=dict(l=10, r=10, t=50, b=50))
    return fig


def explain(a: Anatomy) -> str:
    """One line on what happened at this token, with the numbers."""
    if a.error is None:
        return "No write at this token (learning rate 0), so its error cannot be shown from this recording."
    error, value = float(np.linalg.norm(a.error)), float(np.linalg.norm(a.value))
    share = error / value if value > 0 else float("nan")
    if a.learning_rate == 0:
        return (f"The memory returned a prediction off by {error:.3g} (|v| = {value:.3g}, {share:.0%} of it); its "
                "learning rate is 0 here, so nothing was written. Red is positive, blue negative.")
    return (f"The memory returned a prediction off by {error:.3g} (|v| = {value:.3g}, {share:.0%} of it); it kept "
            f"{a.retention:.3g} of the memory before this token and added {a.learning_rate:.3g} x error x key. Red is positive, blue negative.")


def deep_write_table(recording: Recording, layer: int, head: int, t: int) -> pd.DataFrame:
    """The 2-layer memory's write at token ``t`` as numbers (quantity, value, what it is): one gradient step on
    both matrices of M(x) = r(x) + W1 silu(W2 x) (docs/deep-memory.md), the error before and after it."""
    if len(recording.memory_matrices(layer)) != 2:
        raise KeyError(f"layer {layer} has no 2-layer memory in this recording")
    pick = lambda name: recording.memory_stream(layer, name)[t, head].double()
    norm = lambda x: float(torch.linalg.vector_norm(x))
    value = pick("values")
    rows = [("|v_t|", norm(value), "the value to store"),
            ("surprise |v_t - M_(t-1)(k_t)|", float(pick("surprise")), "the error of the memory before the write"),
            ("|e_t|", norm(pick("errors")), "the error at the chunk start's weights, which the write uses")]
    try:
        after = norm(value - recording.read_memory(layer, head, t, [t])[0])
        rows.append(("|v_t - M_t(k_t)|", after, "the error left after the write"))
    except KeyError:  # keys stored in place of the unit keys: no residual to read with
        pass
    rows += [("learning rate eta_t", float(pick("learning_rate")), "the gate's rate, before the chunk's share"),
             ("step rho_t", float(pick("write_rate")), "eta_t / chunk size, divided by the step's curvature bound when over 1"),
             ("retention a_t", float(pick("retention")), "the share of W - A kept (A: the initial weights)"),
             ("|a_t|", norm(pick("hidden")), "silu(W2 k_t): the hidden units, W1's write key"),
             ("|d_t|", norm(pick("hidden_errors")), "silu'(W2 k_t) * W1^T e_t: W2's write direction"),
             ("|W1_t - W1_(t-1)|", float(pick("write_norm")), "W1's change: a_t (W1 - A1) decay plus rho_t e_t a_t^T"),
             ("|W2_t - W2_(t-1)|", float(pick("hidden_write_norm")), "W2's change: decay plus rho_t d_t k_t^T")]
    return pd.DataFrame(rows, columns=["quantity", "value", "what it is"])
