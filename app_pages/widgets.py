"""Widgets and table formats the pages share: the figures' toolbar, tables as people read them, the
token slider and the switches."""
from __future__ import annotations

import streamlit as st

from nested_learning.viz.compare import switch_label
from nested_learning.viz.view import ablation_names, glossary

# Every figure downloads from its toolbar as SVG (vector, for slides and papers) in one style.
PLOT_CONFIG = {"displaylogo": False, "toImageButtonOptions": {"format": "svg", "filename": "nested-learning-explorer"}}


def for_people(frame):
    """A table as people read it: 3 significant digits, thousands separators, n/a for what does not exist."""
    formats = {}
    for column in frame.columns:
        kind = frame[column].dtype.kind
        if kind == "f":
            formats[column] = lambda v: "n/a" if v != v else f"{v:.3g}"
        elif kind in "iu":
            formats[column] = "{:,}"
    return frame.style.format(formats, na_rep="n/a")


def selected_rows(key: str) -> tuple[int, ...]:
    """The rows picked in the table drawn under ``key`` with ``on_select`` (Streamlit keeps the selection)."""
    event = st.session_state.get(key)
    return tuple(event["selection"]["rows"]) if event else ()


def token_slider(n_tokens: int, key: str, help: str | None = None) -> int:
    """The scrubbed token. A one-token run has nothing to scrub (a slider needs min < max): it says so."""
    if n_tokens <= 1:
        st.session_state.pop(key, None)
        st.caption("Token 0 is the whole run: there is nothing to scrub.")
        return 0
    return st.slider("Token", 0, n_tokens - 1, key=key, help=help)


def ablation_picker(config, key: str, label: str = "Switch off") -> list[str]:
    names = ablation_names(config)
    return st.pills(label, names, selection_mode="multi", key=key, persist_state="session", format_func=switch_label,
                    help="Components to switch off for this run; parameters are untouched.\n\n" +
                         "\n".join(f"- **{switch_label(n)}**: {glossary(n)}" for n in names))
