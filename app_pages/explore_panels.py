"""Explore's panels at the settled token, drawn by the server under the memory player: the memory's
(full-resolution M_t and its write, the delta rule, a probe) and the CMS levels'. Each is built only
while its expander is open."""
from __future__ import annotations

import contextlib

import pandas as pd
import streamlit as st

from nested_learning.viz import anatomy, attention_window, heatmaps, player, probe
from nested_learning.viz.explore_state import CMS_VIEWS, KEYS
from app_pages import classroom
from app_pages.serving import admitted
from app_pages.widgets import PLOT_CONFIG


@contextlib.contextmanager
def lazy_section(title: str, key: str):
    """A tool's panel, built only while open (yields whether it is): a closed expander sends nothing. In
    classroom mode, where it is the one figure shown, it is open and titled."""
    if classroom.in_classroom():
        st.markdown(f"**{title}**")
        yield True
        return
    with st.expander(title, key=key, on_change="rerun") as panel:
        yield bool(panel.open)


def full_memory_panel(recording, layer: int, head: int, t: int, matrix: str = "memory"):
    memory = recording.memory_matrix(layer, head, t, matrix)  # rebuilt once: the delta reuses it
    symbol, rows, columns = player.matrix_names(recording, layer, matrix)
    now, write = heatmaps.memory_figures(memory, memory - recording.memory_matrix(layer, head, t - 1, matrix),
                                         f"token {t}", symbol, rows, columns)
    left, right = st.columns(2)
    left.plotly_chart(now, config=PLOT_CONFIG, key="memory_heatmaps")
    right.plotly_chart(write, config=PLOT_CONFIG, key="memory_write")
    if symbol == "M":
        st.caption("Every cell: red positive, blue negative, white zero. The write is one outer product "
                   "(a pattern along the value dimension times the key), so it shows as stripes.")
    else:
        st.caption(f"Every cell: red positive, blue negative, white zero. {symbol}'s write is one outer product "
                   f"(along the {rows}s times along the {columns}s) plus retention's pull toward its initial "
                   "weights, so it shows as stripes on a faint copy of the matrix.")


def delta_rule_panel(recording, layer: int, head: int, t: int, matrix: str = "memory"):
    if len(recording.memory_matrices(layer)) == 2:  # the 2-layer memory: a gradient step, not the delta rule
        st.caption(f"Token {t}, layer {layer}, head {head}. M(x) = x + W1 silu(W2 x) is asked for the token's key; "
                   "one gradient step on 1/2 |M(k) - v|^2 (taken at the chunk start's weights) writes both matrices: "
                   "W1 += rho e a^T, W2 += rho d k^T, each after keeping a_t of its distance from its initial weights.")
        st.dataframe(anatomy.deep_write_table(recording, layer, head, t).style.format({"value": "{:.4g}"}), hide_index=True)
        return
    parts = anatomy.anatomy(recording, layer, head, t)
    st.caption(f"Token {t}, layer {layer}, head {head}. Mₜ = aₜ Mₜ₋₁ + lrₜ (vₜ − Mₜ₋₁ kₜ) kₜᵀ: the memory "
               "is asked for the token's key, compares its answer with the value, and writes the error along the key.")
    st.plotly_chart(anatomy.anatomy_figure(parts), config=PLOT_CONFIG, key="anatomy")
    st.caption(anatomy.explain(parts))


def cms_panel(recording, layer: int, t: int):
    st.session_state.setdefault(KEYS["cms_view"], CMS_VIEWS[0])  # not default=: a link may have set it
    cms_view = st.segmented_control("CMS panels", CMS_VIEWS, key=KEYS["cms_view"], persist_state="session")
    replay = recording.cms_replay(layer)
    weights, in_this_run = replay.weights(t), cms_view == CMS_VIEWS[1]
    if in_this_run:
        weights = [w - w0 for w, w0 in zip(weights, replay.weights(-1))]
    st.plotly_chart(heatmaps.cms_figure(weights, recording.config.cms_periods, f"{'W_t - W_start' if in_this_run else 'W'} at token {t}:",
                                        start=recording.start_position, t=t),
                    config=PLOT_CONFIG, key="cms_heatmaps")


def probe_panel(recording, layer: int, head: int, t: int, matrix: str = "memory"):
    st.caption(f"After token {t}, layer {layer}.")
    st.session_state.setdefault(KEYS["probe_specific"], True)  # not value=: a link may have set it
    specific = st.toggle("Specificity (minus the match with any other value)", key=KEYS["probe_specific"], persist_state="session")
    try:
        curve = probe.recall_curve(recording, layer, t, specific)
    except KeyError as e:
        st.info(str(e).strip("'\""))
        return
    st.plotly_chart(probe.recall_figure(curve, recording.start_position, specific), config=PLOT_CONFIG, key="probe")
    st.caption("Each earlier token's key asks M_t for its value, one line per head. Plain cosine: 1 means the "
               "read points like the value written there. Specificity subtracts how well the read matches "
               "any other value: near 0, the head holds nothing particular to that token (its values all "
               "point one way), however high the plain cosine.")


DEEP_WRITE_TITLE = "How the settled token was written: one gradient step on W1 and W2"
# The memory's panels under the player: (classroom figure, title, session key of its open state, drawer).
MEMORY_PANELS = (
    ("Memory M_t", "Full-resolution M_t and its write at the settled token", "explore_full_memory", full_memory_panel),
    ("Delta rule", "How the settled token was written: the delta rule", "explore_delta_rule", delta_rule_panel),
    ("Probe", "What the memory still holds at the settled token: a probe", "explore_probe", probe_panel),
)


def memory_panels(recording, layer: int, head: int, t: int, matrix: str = "memory"):
    """The panels the server draws at the settled token: the memory's (full M_t, the delta rule, the probe)
    and the CMS levels'. ``matrix``: the 2-layer memory's W1 ("memory") or W2 ("hidden_memory")."""
    has_memory = layer in recording.memory_layers
    if not has_memory and any(map(classroom.figure_shown, ("Memory M_t", "Delta rule", "Probe"))):
        st.info(f"Layer {layer} has no test-time memory in this run (switched off or not in this model).")
    for figure, title, key, draw in MEMORY_PANELS:
        if has_memory and classroom.figure_shown(figure):
            if figure != "Memory M_t":  # that one starts with the player's heatmaps, anchored above them
                classroom.anchor(figure)
            if figure == "Delta rule" and len(recording.memory_matrices(layer)) == 2:
                title = DEEP_WRITE_TITLE
            with lazy_section(title, key) as open_:
                if open_:
                    draw(recording, layer, head, t, matrix)
    if layer in recording.cms_layers and classroom.figure_shown("CMS"):
        classroom.anchor("CMS")
        with lazy_section("The CMS levels' weights at the settled token", "explore_cms") as open_:
            if open_:
                cms_panel(recording, layer, t)


def window_panel(model, result, t: int):
    """Which tokens attention reads at the settled token, what each branch adds and what the memory's read
    is worth there (the model runs again up to the token: inside the run budget)."""
    if not classroom.figure_shown("Attention window"):
        return
    classroom.anchor("Attention window")
    with lazy_section("What reaches the settled token: attention's window and the memory", "explore_window") as open_:
        if not open_:
            return
        with admitted():
            view = attention_window.window_view(model, result.recording, result.start_state, t)
        st.caption(attention_window.explain(view, model.config.attention_window))
        if view.layers:
            st.plotly_chart(attention_window.window_figure(view), config=PLOT_CONFIG, key="attention_window")
        table = pd.DataFrame(attention_window.updates_table(view))
        st.dataframe(table.style.format(precision=2, na_rep="off"), hide_index=True)
        st.caption("Each number is the size (norm) of the vector a branch adds to the token's residual stream in "
                   "that layer; 'off': not in this model or switched off. 'Without the memory' reads the same "
                   "state with every layer's memory read switched off for this one token.")
