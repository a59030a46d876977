"""Compare: A (the current model, everything on) and B (components switched off, or another model)
read the same text from a fresh memory; side by side on shared scales, with B - A."""
from __future__ import annotations

import streamlit as st

from nested_learning import Ablation
from nested_learning.config import PRESETS
from nested_learning.tokenizer import ByteTokenizer
from nested_learning.viz import compare, models
from nested_learning.viz.presets import TEXT_PRESETS
from nested_learning.viz.session import MAX_RUN_TOKENS, RunRefused
from nested_learning.viz.view import ablation_names, clamp_token
from app_pages import common

model, choice = common.current_model()
config = model.config
KEYS = common.PAGE_KEYS["compare"]
uploaded = st.session_state.get("uploaded_model")  # this session's last uploaded checkpoint, if any
B_OPTIONS = compare.b_options(PRESETS, models.DEFAULT_CHECKPOINT.is_file(), uploaded is not None, choice.kind)
notices = common.read_view(config, "compare", tuple(B_OPTIONS))

st.title("Compare two settings")
common.show_notices(notices)
st.caption("A is the current model with every component on. B is the same model with components switched off, "
           "or another model. Both read the same text from a fresh memory (your Explore memory is not used).")


def b_label(option: str) -> str:
    return compare.b_label(option, models.DEFAULT_CHECKPOINT.name)


def model_for(option: str):
    kind, name = compare.b_source(option)
    if kind == "same":
        return model
    if kind == "upload":
        return uploaded
    return common.shared_model(kind, name or models.DEFAULT_CHECKPOINT.name, choice.device)


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
        off = common.ablation_picker(config, KEYS["off"], "Switch off in B")
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
            with common.admitted(), st.spinner(f"Running A and B on {n_tokens} tokens...", show_time=True):
                rec_a = compare.run_side(model, text, Ablation(), "A")
                rec_b = compare.run_side(model_b, text, ablation_b, "B")
        except RunRefused as e:
            st.session_state.pop("compare", None)
            st.error(str(e), icon=":material/block:")
        else:  # tagged with the model: a comparison finishing after a model switch is never shown
            st.session_state.compare = (choice.key, (rec_a, rec_b, answers, label_b))


def linked_view(token: int | None = None):
    """This page's view for the link: its text (typed, or the preset), B, what B switches off, layer, head, token."""
    return common.current_view(token, typed if typed.strip() else None, "compare", option if option != "same" else None)


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
    t = common.token_slider(rec_a.n_tokens, "compare_token")
    fig = compare.compare_memory(rec_a, rec_b, layer, head, t)
    if fig is None:
        st.info(f"Layer {layer}, head {head} has no test-time memory on one side, so there is no M_t to compare.")
    else:
        st.plotly_chart(fig, config=common.PLOT_CONFIG, key="compare_memory")
    common.write_view(common.with_token(view, t))


def show_comparison(rec_a, rec_b, answers, label_b):
    st.markdown(f"**A** (all on) vs **{label_b}**")
    table = compare.summary_table(rec_a, rec_b, answers)
    st.dataframe(table.style.format("{:.4f}", na_rep="n/a"), key="compare_table")
    if not answers:
        st.caption("Recall accuracy needs a preset text (its answer bytes are known); typed text shows n/a.")
    st.plotly_chart(compare.compare_timeline(rec_a, rec_b), config=common.PLOT_CONFIG, key="compare_timeline")
    memory_panels(rec_a, rec_b)


result = st.session_state.get("compare")
result = result[1] if result is not None and result[0] == choice.key else None
if result is None:
    st.info("Choose B and press **Compare**.")
    common.write_view(linked_view())
else:
    show_comparison(*result)
