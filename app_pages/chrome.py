"""What every page has around it (app.py draws it): the model's notices above the page and the sidebar
after it."""
from __future__ import annotations

import streamlit as st

from nested_learning.viz.safe_text import escape_markdown
from app_pages.memory import memory_session, reset_button
from app_pages.model_loading import current_model, shown_label
from app_pages.serving import shared_admission


def model_notice():
    current_model()
    if (problem := shared_admission()[2]) is not None:
        st.warning(escape_markdown(problem, limit=300), icon=":material/warning:")
    if st.session_state.get("model_notice"):
        st.info(st.session_state.model_notice, icon=":material/info:")


def sidebar():
    """Drawn after the page (pages never call st.stop), so the count includes this run."""
    _, choice = current_model()
    session = memory_session()
    with st.sidebar:
        st.caption(f"Model: {shown_label(choice)}")
        st.metric("Memory holds", f"{session.position} tokens", help="Tokens read since the last reset; "
                  "each run on Explore continues from here.")
        st.toggle("Classroom mode", key="classroom", help="Larger type; Explore shows one figure at a time; the "
                  "lessons ask the class to predict before they reveal the result.")
        reset_button("reset_memory")
        if session.history:
            st.caption("What the memory has read, in order:")
            for entry in session.history[-12:]:
                marks = (f" · off: {', '.join(entry.off)}" if entry.off else "") + ("" if entry.complete else " · stopped early")
                st.caption(f"**{entry.name}** ({entry.tokens} tokens at {entry.start}){marks}: "  # marks: switch names, ours
                           f"{escape_markdown(entry.excerpt, limit=40)}")
            if len(session.history) > 12:
                st.caption(f"... and {len(session.history) - 12} earlier runs.")
