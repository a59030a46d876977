"""This browser session's memory: the state that carries across Explore's runs until Reset."""
from __future__ import annotations

import streamlit as st

from nested_learning.viz import explore_state
from nested_learning.viz.explore_state import ExploreState
from nested_learning.viz.session import MemorySession
from app_pages.model_loading import current_model

# What Explore derived from the memory's last run (its figures, the player's payload): dropped on Reset.
DERIVED_FROM_THE_MEMORY = ("explore_memo",)


def memory_session() -> MemorySession:
    """This browser session's memory for the current model (new and empty after a model switch)."""
    _, choice = current_model()
    session = st.session_state.get("memory")
    if session is None or session.model_key != choice.key:
        session = st.session_state.memory = MemorySession(choice.key)
    return session


def reset_button(key: str) -> None:
    """Reset memory, where the page needs it too: on a phone the sidebar's button is out of sight.

    A click normally resets in its callback, before the page is drawn. After a fragment's rerun (the player
    reporting its token) Streamlit may deliver the click without calling the callback: then the button
    reads True with the memory not reset since, and the reset happens here, followed by a fresh rerun so
    the page and the sidebar's counters show the empty memory."""
    clicked = st.button("Reset memory", key=key, width="stretch", on_click=_reset_memory,
                        help="Forget everything this session's memory has read (the model's parameters never change).")
    if clicked and memory_session().version != st.session_state.get("memory_reset_version"):
        _reset_memory()
        st.rerun()


def _reset_memory():
    session = memory_session()
    session.reset()
    st.session_state.memory_reset_version = session.version  # this click's reset is done (see reset_button)
    for derived in DERIVED_FROM_THE_MEMORY:
        st.session_state.pop(derived, None)  # they hold the last run's recording and figures
    explore_state.update(st.session_state, ExploreState.reset)  # a fresh start shows the input (and the demos) again
