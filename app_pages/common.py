"""Streamlit glue shared by the pages: the cached model, this session's memory, the sidebar and the
shareable view in the URL. Logic lives in nested_learning.viz; this file only wires it to Streamlit."""
from __future__ import annotations

import contextlib
import uuid
from dataclasses import replace

import streamlit as st

from nested_learning import CheckpointError, HopeTransformer
from nested_learning.viz import models
from nested_learning.viz.compare import switch_label
from nested_learning.viz.admission import Admission, AdmissionSettings, Busy
from nested_learning.viz.presets import TEXT_PRESETS
from nested_learning.viz.safe_text import escape_markdown
from nested_learning.viz.session import MemorySession, RunRefused
from nested_learning.viz.view import View, ablation_names, glossary, parse_view, view_to_params

# Every figure downloads from its toolbar as SVG (vector, for slides and papers) in one style.
PLOT_CONFIG = {"displaylogo": False, "toImageButtonOptions": {"format": "svg", "filename": "nested-learning-explorer"}}


@st.cache_resource(max_entries=6, show_spinner="Loading the model...")
def shared_model(kind: str, name: str, device: str) -> HopeTransformer:
    """One model object per (source, device) for the whole server: parameters are never mutated, every
    session passes its own state."""
    return models.build_model(models.ModelChoice(kind, name, device))


@st.cache_resource(max_entries=2, show_spinner="Loading the baseline...")
def shared_baseline(device: str) -> HopeTransformer | None:
    """The shipped same-window transformer (None when assets/ has none), shared like the model."""
    return models.build_baseline(device)


@st.cache_resource(max_entries=2, show_spinner="Building held-out prose from the offline corpus...")
def shared_prose(heldout_fraction: float):
    """Held-out prose for the validation suite, built once per server (a few seconds)."""
    from nested_learning.validation.prose import HeldoutProse
    return HeldoutProse(heldout_fraction=heldout_fraction)


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


def token_slider(n_tokens: int, key: str, help: str | None = None) -> int:
    """The scrubbed token. A one-token run has nothing to scrub (a slider needs min < max): it says so."""
    if n_tokens <= 1:
        st.session_state.pop(key, None)
        st.caption("Token 0 is the whole run: there is nothing to scrub.")
        return 0
    return st.slider("Token", 0, n_tokens - 1, key=key, help=help)


def _choice() -> models.ModelChoice:
    if "model_choice" not in st.session_state:
        choice, notice = models.default_choice()
        st.session_state.model_choice, st.session_state.model_notice = choice, notice
    return st.session_state.model_choice


def current_model() -> tuple[HopeTransformer, models.ModelChoice]:
    choice = _choice()
    if choice.kind == "upload":
        return st.session_state.uploaded_model, choice
    try:
        return shared_model(choice.kind, choice.name, choice.device), choice
    except (CheckpointError, OSError) as e:  # a damaged shipped file: fall back, say why
        fallback = models.ModelChoice("preset", models.FALLBACK_PRESET, choice.device)
        st.session_state.model_choice = fallback
        st.session_state.model_notice = (f"The shipped checkpoint could not be loaded ({escape_markdown(e, limit=300)}); "
                                         "using a seeded random-init model.")
        return shared_model(fallback.kind, fallback.name, fallback.device), fallback


def set_model(choice: models.ModelChoice, model: HopeTransformer | None = None):
    """Switch this session to another model (an upload passes its loaded model). The memory is reset:
    a state belongs to the model that wrote it."""
    if choice.kind == "upload":
        st.session_state.uploaded_model = model
    st.session_state.model_choice, st.session_state.model_notice = choice, None


def load_upload(name: str, data: bytes, device: str) -> str | None:
    """Load an uploaded checkpoint; on failure the current model stays and the one-line reason is returned."""
    try:
        choice, model = models.load_upload(name, data, device)
    except CheckpointError as e:
        return escape_markdown(str(e), limit=300)  # shown as Markdown
    set_model(choice, model)
    return None


def memory_session() -> MemorySession:
    """This browser session's memory for the current model (new and empty after a model switch)."""
    _, choice = current_model()
    session = st.session_state.get("memory")
    if session is None or session.model_key != choice.key:
        session = st.session_state.memory = MemorySession(choice.key)
    return session


def shown_label(choice: models.ModelChoice) -> str:
    """The model's label for a Markdown element (an upload's file name is user text)."""
    return escape_markdown(choice.label, limit=120)


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
    for cached in ("explore_text_spans", "explore_text_figure", "explore_timelines", "explore_repeats",
                   "memory_player_payload"):
        st.session_state.pop(cached, None)  # they hold the last run's recording and figures
    st.session_state.pop("explore_input_folded", None)  # a fresh start shows the input (and the demos) again


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


def model_notice():
    current_model()
    if (problem := shared_admission()[2]) is not None:
        st.warning(escape_markdown(problem, limit=300), icon=":material/warning:")
    if st.session_state.get("model_notice"):
        st.info(st.session_state.model_notice, icon=":material/info:")


# The metric rule comes after the paragraph rule it overrides: metric values are markdown paragraphs too.
CLASSROOM_CSS = """<style>
[data-testid="stMain"] { font-size: 1.25rem; }
[data-testid="stMain"] h1 { font-size: 2.6rem; }
[data-testid="stMain"] [data-testid="stMarkdownContainer"] p { font-size: 1.25rem; line-height: 1.5; }
[data-testid="stMain"] [data-testid="stMetricValue"] [data-testid="stMarkdownContainer"] p { font-size: 2.8rem; line-height: 1.2; }
[data-testid="stMain"] input, [data-testid="stMain"] textarea { font-size: 1.25rem; }
</style>"""


def classroom() -> None:
    """Classroom mode (sidebar): larger type here; one figure at a time on Explore and a prediction before
    each lesson's reveal are the pages' (``figure_shown``, ``in_classroom``)."""
    if in_classroom():
        st.html(CLASSROOM_CSS)


# Classroom mode shows Explore's results one figure at a time, chosen here (in this order).
CLASSROOM_FIGURES = ("Timelines", "Memory M_t", "Delta rule", "Probe", "CMS", "Coloured text", "Verdict", "Continue a prompt")


def classroom_figure_picker() -> None:
    """In classroom mode: the one figure Explore shows (see ``figure_shown``)."""
    if in_classroom():
        st.segmented_control("Figure", CLASSROOM_FIGURES, default=CLASSROOM_FIGURES[0], key="classroom_figure",
                             persist_state="session", help="Classroom mode shows one figure at a time.")


def figure_shown(name: str) -> bool:
    """Whether Explore draws this figure: all of them normally, only the chosen one in classroom mode."""
    assert name in CLASSROOM_FIGURES, name
    if not in_classroom():
        return True
    return (st.session_state.get("classroom_figure") or CLASSROOM_FIGURES[0]) == name


def in_classroom() -> bool:
    return bool(st.session_state.get("classroom"))


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


# ---- the shareable view ----------------------------------------------------------------------
# Each page keeps its own widgets: a choice on Explore never leaks into Compare's B, and back.
PAGE_KEYS = {"explore": {"layer": "view_layer", "head": "view_head", "off": "view_off", "preset": "view_preset",
                         "text": "explore_text"},
             "compare": {"layer": "compare_layer", "head": "compare_head", "off": "compare_off",
                         "preset": "compare_preset", "text": "compare_text"}}
WIDGET_KEYS = PAGE_KEYS["explore"]


def read_view(config, page: str = "explore", b_options: tuple[str, ...] = ()) -> list[str]:
    """Apply the URL to the page's widgets when it differs from what this session last wrote (a shared
    link, or an edited URL): a link with a text or preset runs once on arrival. Returns the notices of
    values that were clamped or ignored."""
    keys, state = PAGE_KEYS[page], st.session_state
    params = st.query_params.to_dict()
    if not params or params == state.get("view_params"):
        _fit_widgets(config, keys)
        return []
    view, notices = parse_view(params, config, tuple(TEXT_PRESETS), b_options)
    state[keys["layer"]], state[keys["head"]], state[keys["off"]] = view.layer, view.head, list(view.off)
    arrives = view.text is not None or view.preset is not None
    if view.text is not None:
        state[keys["text"]] = view.text
    elif view.preset:
        state[keys["preset"]] = view.preset
        if page == "compare":
            state[keys["text"]] = ""  # Compare runs its typed text when there is one
    if page == "explore":
        state.explore_all_heads, state.probe_specific = view.all_heads, not view.probe_cosine
        state.cms_view = CMS_VIEWS[view.cms_change]
        if arrives:
            state.explore_source = "Type" if view.text is not None else "Preset"
            state.autorun = True  # runs once, from a fresh memory
        state.pending_token = view.token  # applied to the run (clamped to its length)
    else:
        if view.b is not None:
            state.compare_b = view.b
        state.compare_autorun = arrives
        if view.token is not None:
            state.compare_token = view.token  # clamped to the comparison's length when it is drawn
    state.view_params = params
    return notices


def _fit_widgets(config, keys: dict):
    """Keep remembered widget values valid for the current model (another model may have fewer layers)."""
    state = st.session_state
    if state.get(keys["layer"], 0) >= config.n_layers:
        state[keys["layer"]] = config.n_layers - 1
    if state.get(keys["head"], 0) >= config.n_memory_heads:
        state[keys["head"]] = config.n_memory_heads - 1
    if keys["off"] in state:
        valid = ablation_names(config)
        state[keys["off"]] = [n for n in state[keys["off"]] if n in valid]


CMS_VIEWS = ("weights", "change in this run")  # Explore's CMS panels: View.cms_change picks the second


def current_view(token: int | None = None, text: str | None = None, page: str = "explore", b: str | None = None) -> View:
    """The page's view in its widgets; ``text``: the page's typed input, which the link then holds
    instead of a preset; ``b``: Compare's choice for B; Explore's figure settings from their widgets."""
    keys, state = PAGE_KEYS[page], st.session_state
    explore = page == "explore"
    return View(None if text is not None else state.get(keys["preset"]), int(state.get(keys["layer"], 0)),
                int(state.get(keys["head"], 0)), token, tuple(state.get(keys["off"], ())), text, b,
                explore and bool(state.get("explore_all_heads", False)),
                explore and state.get("cms_view") == CMS_VIEWS[1],
                explore and not state.get("probe_specific", True))


def write_view(view: View):
    """Put the view in the URL (only when it changed, so the browser history stays quiet)."""
    params = view_to_params(view)
    if params != st.query_params.to_dict():
        st.query_params.from_dict(params)
    st.session_state.view_params = params


def show_notices(notices: list[str]):
    for notice in notices:
        st.warning(notice, icon=":material/link:")


def ablation_picker(config, key: str, label: str = "Switch off") -> list[str]:
    names = ablation_names(config)
    return st.pills(label, names, selection_mode="multi", key=key, persist_state="session", format_func=switch_label,
                    help="Components to switch off for this run; parameters are untouched.\n\n" +
                         "\n".join(f"- **{switch_label(n)}**: {glossary(n)}" for n in names))


def with_token(view: View, token: int) -> View:
    return replace(view, token=token)
