"""Memory probe: what the memory still holds after token t. For every earlier token s, query M_t with
the key k_s (the 2-layer memory: M_t(k_s), its residual included) and compare what comes back with the value v_s written at s (cosine similarity): a
forgetting curve per head. The specificity subtracts the read's mean cosine with every other value
written so far: when a head's values all point one way, every read matches every value, and only the
specificity says whether the memory holds anything particular to token s. No Streamlit here."""
from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from ..recording import Recording


def recall_curve(recording: Recording, layer: int, t: int, specific: bool = False) -> np.ndarray:
    """[heads, t + 1]: cosine between M_t k_s and v_s for s = 0..t (NaN where either is zero); with
    ``specific``, minus the mean cosine between M_t k_s and every value v_0..v_t. Needs the recording's
    values (recordings made before values were kept raise KeyError)."""
    if not recording.has_memory_stream(layer, "values"):
        raise KeyError("this recording has no values (made before they were kept): record it again")
    values = recording.memory_stream(layer, "values")[:t + 1].double()  # [s, H, d]
    heads = values.shape[1]
    out = np.full((heads, t + 1), np.nan)
    for head in range(heads):
        read = recording.read_memory(layer, head, t, slice(0, t + 1))  # M_t(k_s) for every s
        norms = read.norm(dim=-1) * values[:, head].norm(dim=-1)
        cosine = (read * values[:, head]).sum(-1) / norms
        if specific:  # every read against every value: the mean is what any value would score
            unit_read = read / read.norm(dim=-1, keepdim=True).clamp_min(1e-30)
            unit_values = values[:, head] / values[:, head].norm(dim=-1, keepdim=True).clamp_min(1e-30)
            cosine = cosine - (unit_read @ unit_values.T).mean(-1)
        out[head] = np.where(norms.numpy() > 0, cosine.numpy(), np.nan)
    return out


def recall_figure(curve: np.ndarray, start_position: int = 0, specific: bool = False) -> go.Figure:
    positions = np.arange(curve.shape[1]) + start_position
    fig = go.Figure([go.Scatter(x=positions, y=row, mode="lines", name=f"head {h}", line=dict(width=1.2))
                     for h, row in enumerate(curve)])
    fig.update_layout(height=280, margin=dict(l=10, r=10, t=30, b=40), hovermode="x unified",
                      xaxis_title="token s written earlier (stream position)",
                      yaxis_title="specificity" if specific else "cos(M_t k_s, v_s)", yaxis=dict(range=[-1, 1]))
    return fig
