"""Classroom mode (the sidebar's toggle): larger type on every page, one figure at a time on Explore (the
page scrolls to it when it is picked), and a prediction before each lesson's reveal on Learn."""
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


# Scrolls the page so the element with the class st-key-<target> is at the top, once per new nonce (a
# rerun that keeps the figure leaves the page where the lecturer scrolled it).
SCROLL_JS = """
export default function (component) {
  const { data } = component;
  if (!data || !data.target) return;
  const done = (window.__nleScrolled = window.__nleScrolled || {});
  if (done[data.target] === data.nonce) return;
  done[data.target] = data.nonce;
  // again as the page settles: the panels above may still change height after the first scroll
  const scroll = (attempt) => {
    const element = document.querySelector(`.st-key-${data.target}`);
    if (element && done[data.target] === data.nonce) element.scrollIntoView({ block: "start", behavior: "instant" });
    if (attempt < 12) setTimeout(() => scroll(attempt + 1), 150);
  };
  scroll(0);
}
"""
SCROLL = st.components.v2.component("nle_scroll_to", js=SCROLL_JS)
ANCHOR = "classroom_figure_top"  # the scroll component's own key: its element marks the place


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


def anchor(name: str) -> None:
    """Where the figure ``name`` starts: in classroom mode, while it is the one shown, the page scrolls here
    when it is picked (on a 720-px projector the run's controls would otherwise fill the first screen)."""
    if in_classroom() and figure_shown(name):
        SCROLL(key=ANCHOR, data={"target": ANCHOR, "nonce": name})
