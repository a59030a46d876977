"""Classroom mode (the sidebar's toggle): larger type on every page, one figure at a time on Explore, and
a prediction before each lesson's reveal on Learn."""
from __future__ import annotations

import streamlit as st

# The metric rule comes after the paragraph rule it overrides: metric values are markdown paragraphs too.
CLASSROOM_CSS = """<style>
[data-testid="stMain"] { font-size: 1.25rem; }
[data-testid="stMain"] h1 { font-size: 2.6rem; }
[data-testid="stMain"] [data-testid="stMarkdownContainer"] p { font-size: 1.25rem; line-height: 1.5; }
[data-testid="stMain"] [data-testid="stMetricValue"] [data-testid="stMarkdownContainer"] p { font-size: 2.8rem; line-height: 1.2; }
[data-testid="stMain"] input, [data-testid="stMain"] textarea { font-size: 1.25rem; }
</style>"""

# Classroom mode shows Explore's results one figure at a time, chosen here (in this order).
FIGURES = ("Timelines", "Memory M_t", "Delta rule", "Probe", "Attention window", "CMS", "Coloured text", "Verdict",
           "Continue a prompt")


def in_classroom() -> bool:
    return bool(st.session_state.get("classroom"))


def larger_type() -> None:
    """Larger type on every page while classroom mode is on."""
    if in_classroom():
        st.html(CLASSROOM_CSS)


def figure_picker() -> None:
    """In classroom mode: the one figure Explore shows (see ``figure_shown``)."""
    if in_classroom():
        st.segmented_control("Figure", FIGURES, default=FIGURES[0], key="classroom_figure",
                             persist_state="session", help="Classroom mode shows one figure at a time.")


def figure_shown(name: str) -> bool:
    """Whether Explore draws this figure: all of them normally, only the chosen one in classroom mode."""
    assert name in FIGURES, name
    if not in_classroom():
        return True
    return (st.session_state.get("classroom_figure") or FIGURES[0]) == name
