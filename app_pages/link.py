"""The shareable view in the URL: a link that arrives (read once, until this session writes the URL) and
the page's view written back. What a view means for a page's widgets is the page's own."""
from __future__ import annotations

import streamlit as st

from nested_learning.viz.presets import TEXT_PRESETS
from nested_learning.viz.view import View, parse_view, view_to_params


# URLs this session wrote or read, newest last. A rerun asked for before the previous run's URL reached the
# browser carries the URL from before it: one of these, so not a link to follow (it would undo the rerun).
SEEN_VIEWS = 16


def _seen(params: dict):
    seen = [p for p in st.session_state.get("view_params_seen", []) if p != params]
    st.session_state.view_params_seen = (seen + [params])[-SEEN_VIEWS:]


def arriving_view(config, b_options: tuple[str, ...] = ()) -> tuple[View | None, list[str]]:
    """The URL's view when this session has not written or read it before (a shared link, or an edited URL),
    with the notices of values that were clamped or ignored; None when there is nothing new."""
    params = st.query_params.to_dict()
    if not params or params in st.session_state.get("view_params_seen", []):
        return None, []
    view, notices = parse_view(params, config, tuple(TEXT_PRESETS), b_options)
    _seen(params)
    return view, notices


def write_view(view: View):
    """Put the view in the URL (only when it changed, so the browser history stays quiet)."""
    params = view_to_params(view)
    if params != st.query_params.to_dict():
        st.query_params.from_dict(params)
    _seen(params)


def show_notices(notices: list[str]):
    for notice in notices:
        st.warning(notice, icon=":material/link:")
