"""Which model this session runs: the server's shared models (one object per source and device, never
mutated) and this session's choice among them, with uploads."""
from __future__ import annotations

import streamlit as st

from nested_learning import CheckpointError, HopeTransformer
from nested_learning.viz import models
from nested_learning.viz.safe_text import escape_markdown


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


def shown_label(choice: models.ModelChoice) -> str:
    """The model's label for a Markdown element (an upload's file name is user text)."""
    return escape_markdown(choice.label, limit=120)
