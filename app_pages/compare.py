"""Compare: A (the current model, everything on) and B (components switched off, or another model)
read the same text from a fresh memory; side by side on shared scales, with B - A."""
from __future__ import annotations

from dataclasses import replace

import streamlit as st

from nested_learning import Ablation
from nested_learning.config import PRESETS
from nested_learning.tokenizer import ByteTokenizer
from nested_learning.viz import compare, models
from nested_learning.viz.presets import TEXT_PRESETS
from nested_learning.viz.session import MAX_RUN_TOKENS, RunRefused
from nested_learning.viz.view import View, ablation_names, clamp_token, fit_choices
from app_pages import link
from app_pages.model_loading import current_model, shared_model
from app_pages.serving import admitted
from app_pages.widgets import PLOT_CONFIG, ablation_picker, token_slider

model, choice = current_model()
config = model.config
# This page's own widgets: a choice on Explore never leaks into Compare's B, and back.
KEYS = {"layer": "compare_layer", "head": "compare_head", "off": "compare_off", "preset": "compare_preset",
        "text": "compare_text"}
uploaded = st.session_state.get("uploaded_model")  # this session's last uploaded checkpoint, if any
B_OPTIONS = compare.b_options(PRESETS, models.DEFAULT_CHECKPOINT.is_file(), uploaded is not None, choice.kind,
                              models.other_checkpoints(), choice.name)


def arrive(view: View):
    """A link's view into this page's widgets; one with a text or a preset compares once on arrival."""
    state = st.session_state
    state[KEYS["layer"]], state[KEYS["head"]], state[KEYS["off"]] = view.layer, view.head, list(view.off)
    if view.text is not None:
        state[KEYS["text"]] = view.text
    elif view.preset:
        state[KEYS["preset"]], state[KEYS["text"]] = view.preset, ""  # the typed text would win over the preset
    if view.b is not None:
        state.compare_b = view.b
    state.compare_autorun = view.text is not None or view.preset is not None
    if view.token is not None:
        state.compare_token = view.token  # clamped to the comparison's length when it is drawn


def fit_widgets():
    """Remembered choices made valid for the current model (another model may have fewer layers)."""
    state = st.session_state
    before = {name: state.get(KEYS[name]) for name in ("layer", "head", "off")}
    if before["off"] is not None:
        before["off"] = tuple(before["off"])
    fitted = dict(zip(before, fit_choices(config, *before.values())))
    for name, value in fitted.items():
        if value != before[name]:
            state[KEYS[name]] = list(value) if name == "off" else value


arrived, notices = link.arriving_view(config, tuple(B_OPTIONS))
if arrived is None:
    fit_widgets()
else:
    arrive(arrived)

st.title("Compare two settings")
link.show_notices(notices)
st.caption("A is the current model with every component on. B is the same model with components switched off, "
           "or another model. Both read the same text from a fresh memory (your Explore memory is not used).")


def b_label(option: str) -> str:
    return compare.b_label(option, models.DEFAULT_CHECKPOINT.name, models.CHECKPOINT_NOTES)


def model_for(option: str):
    kind, name = compare.b_source(option)
    if kind == "same":
        return model
    if kind == "upload":
        return uploaded
    return shared_model(kind, name or models.DEFAULT_CHECKPOINT.name, choice.device)


with st.container(border=True):
    left, right = st.columns(2)
    with left:
        key = st.selectbox("Text", list(TEXT_PRESETS), key=KEYS["preset"], persist_state="session",
                           format_func=lambda k: TEXT_PRESETS[k].describe())
        typed = st.text_area("or type your own (leave empty to use the preset)", key=KEYS["text"], height=90,
                             persist_state="session")
        preset = TEXT_PRESETS[key or "phrase"]
        text, answers = (typed, ()) if typed.strip() else (preset.text, preset.answers)
    with right:
        option = st.selectbox("B runs", B_OPTIONS, format_func=b_label, key="compare_b", persist_state="session")
        model_b = model_for(option)
    names_b = ablation_names(model_b.config)
    if model_b is model:
        off = ablation_picker(config, KEYS["off"], "Switch off in B")
    else:
        off = st.pills("Switch off in B", names_b, selection_mode="multi", key="compare_off_other",
                       format_func=compare.switch_label)
    n_tokens = len(ByteTokenizer().encode(text))
    # A link to a comparison runs it once on arrival.
    clicked = st.button("Compare", type="primary", key="compare_run") or st.session_state.pop("compare_autorun", False)
    st.caption(f"{n_tokens} tokens; at most {MAX_RUN_TOKENS}.")

if clicked:
    if not 0 < n_tokens <= MAX_RUN_TOKENS:
        st.error(f"The text is {n_tokens} tokens; a comparison takes 1 to {MAX_RUN_TOKENS}.")
    else:
        ablation_b = Ablation.from_names([n for n in off if n in names_b])
        label_b = compare.side_label(ablation_b, option, models.DEFAULT_CHECKPOINT.name)
        try:
            with admitted(), st.spinner(f"Running A and B on {n_tokens} tokens...", show_time=True):
                rec_a = compare.run_side(model, text, Ablation(), "A")
                rec_b = compare.run_side(model_b, text, ablation_b, "B")
        except RunRefused as e:
            st.session_state.pop("compare", None)
            st.error(str(e), icon=":material/block:")
        else:  # tagged with the model: a comparison finishing after a model switch is never shown
            st.session_state.compare = (choice.key, (rec_a, rec_b, answers, label_b))


def linked_view(token: int | None = None):
    """This page's view for the link: its text (typed, or the preset), B, what B switches off, layer, head, token."""
    text = typed if typed.strip() else None
    return View(None if text is not None else st.session_state.get(KEYS["preset"]), int(st.session_state.get(KEYS["layer"], 0)),
                int(st.session_state.get(KEYS["head"], 0)), token, tuple(st.session_state.get(KEYS["off"], ())), text,
                option if option != "same" else None)


@st.fragment
def memory_panels(rec_a, rec_b):
    st.subheader("Memory of one head, A vs B")
    c1, c2 = st.columns(2)
    layer = c1.selectbox("Layer", range(config.n_layers), key=KEYS["layer"], persist_state="session")
    head = c2.selectbox("Head", range(config.n_memory_heads), key=KEYS["head"], persist_state="session")
    view, notice = clamp_token(linked_view(st.session_state.get("compare_token")), rec_a.n_tokens)
    if notice:
        st.warning(notice)
    st.session_state.compare_token = view.token if view.token is not None else rec_a.n_tokens - 1
    t = token_slider(rec_a.n_tokens, "compare_token")
    fig = compare.compare_memory(rec_a, rec_b, layer, head, t)
    if fig is None:
        st.info(f"Layer {layer}, head {head}: no test-time memory of the same form on both sides (switched off or not "
                "in one model, or a 2-layer memory against a linear one), so there is no M_t to compare.")
    else:
        st.plotly_chart(fig, config=PLOT_CONFIG, key="compare_memory")
    link.write_view(replace(view, token=t))


def show_comparison(rec_a, rec_b, answers, label_b):
    st.markdown(f"**A** (all on) vs **{label_b}**")
    table = compare.summary_table(rec_a, rec_b, answers)
    st.dataframe(table.style.format("{:.4f}", na_rep="n/a"), key="compare_table")
    if not answers:
        st.caption("Recall accuracy needs a preset text (its answer bytes are known); typed text shows n/a.")
    st.plotly_chart(compare.compare_timeline(rec_a, rec_b), config=PLOT_CONFIG, key="compare_timeline")
    memory_panels(rec_a, rec_b)


result = st.session_state.get("compare")
result = result[1] if result is not None and result[0] == choice.key else None
if result is None:
    st.info("Choose B and press **Compare**.")
    link.write_view(linked_view())
else:
    show_comparison(*result)
