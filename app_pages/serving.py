"""The server's share of a run: admission (a slot per run, a queue when busy), the run deadline, a run
that notices its tab was closed, and a refused run shown in place of its results."""
from __future__ import annotations

import contextlib
import uuid

import streamlit as st

from nested_learning.viz.admission import Admission, AdmissionSettings, Busy
from nested_learning.viz.session import RunRefused


@st.cache_resource
def shared_admission() -> tuple[AdmissionSettings, dict[str, Admission], str | None]:
    """The server's admission control: settings (NLE_* variables), one pool for model runs and one for
    the full validation, and the reason the defaults are used if a variable was malformed."""
    try:
        settings, problem = AdmissionSettings.from_environment(), None
    except ValueError as e:
        settings, problem = AdmissionSettings(), f"{e}; using the default admission settings."
    pools = {"run": Admission(settings.max_running, settings.max_waiting, "run"),
             "validation": Admission(settings.max_validations, settings.max_waiting, "validation")}
    return settings, pools, problem


def run_deadline() -> float:
    return shared_admission()[0].run_deadline_s


@contextlib.contextmanager
def admitted(what: str = "run"):
    """Hold one of the server's slots for ``what`` while the block runs; while queued, the page shows the
    place in the queue. A run that is not admitted raises RunRefused (shown by refusals_shown)."""
    settings, pools, _ = shared_admission()
    owner = st.session_state.setdefault("admission_owner", uuid.uuid4().hex)
    place = st.empty()

    def on_wait(position: int):
        place.info(f"The server is busy: waiting for a free slot, place {position} in the queue.",
                   icon=":material/hourglass_top:")

    try:
        with pools[what].slot(owner, on_wait, settings.wait_limit_s):
            place.empty()
            yield
    except Busy as e:
        place.empty()
        raise RunRefused(str(e)) from None


def page_still_open():
    """A check a run calls between pieces, from any thread: whether this browser session is still connected
    (a closed tab ends it, and its run stops computing at the next piece)."""
    from streamlit.runtime import Runtime
    from streamlit.runtime.scriptrunner import get_script_run_ctx
    ctx = get_script_run_ctx()
    if ctx is None or not Runtime.exists():  # streamlit.testing: no server, nothing can close
        return lambda: True
    runtime, session_id = Runtime.instance(), ctx.session_id
    return lambda: runtime.is_active_session(session_id)


@contextlib.contextmanager
def refusals_shown():
    """A refused run (divergence, limits) shows its one-line reason in place of its results; the page
    and its sidebar stay."""
    try:
        yield
    except RunRefused as e:
        st.error(str(e), icon=":material/block:")
