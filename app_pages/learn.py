"""Learn: one-click demos of the ideas behind the model, each with a plain explanation."""
from __future__ import annotations

import streamlit as st

from nested_learning.viz import lessons
from app_pages.classroom import in_classroom
from app_pages.model_loading import current_model, shown_label
from app_pages.serving import admitted, refusals_shown
from app_pages.widgets import PLOT_CONFIG, for_people

LESSON_TEXT_LIMIT = 400  # bytes: the lessons read a short text several times


def show_verdict(checks: list[tuple[bool, str]]):
    """Each claim of a lesson as computed on this model: confirmed, or honestly not shown."""
    for holds, sentence in checks:
        (st.success if holds else st.warning)(sentence, icon=":material/check_circle:" if holds else ":material/info:")


def predict(key: str, question: str, options: tuple[str, ...]) -> bool:
    """Classroom mode: the class commits to an answer before the lesson reveals it. True once it may run
    (always outside classroom mode): the lesson's button waits for the prediction."""
    if not in_classroom():
        return True
    st.radio(f"Predict first: {question}", options, index=None, key=f"learn_{key}_predict", horizontal=True)
    return st.session_state.get(f"learn_{key}_predict") is not None


WAIT_HELP = "Classroom mode: choose a prediction first."


def reveal(key: str, outcome: str):
    """Classroom mode: the class's prediction beside what the model did."""
    prediction = st.session_state.get(f"learn_{key}_predict") if in_classroom() else None
    if prediction is not None:
        st.info(f"You predicted **{prediction}**; the model: **{outcome}**.", icon=":material/psychology:")


def _lesson_text(intro: str, what: str, default: str, key: str, button: str,
                 question: tuple[str, tuple[str, ...]] | None = None) -> str | None:
    """A lesson's explanation, its text box, the class's prediction (classroom mode) and run button: the
    text when run with an acceptable text (1 to LESSON_TEXT_LIMIT bytes), else None (with the reason
    shown when it was refused)."""
    st.markdown(intro)
    text = st.text_input(what.capitalize(), default, key=f"learn_{key}")
    ready = predict(key, *question) if question is not None else True
    if not st.button(button, key=f"learn_{key}_run", type="primary", disabled=not ready, help=None if ready else WAIT_HELP):
        return None
    if text.strip() and len(text.encode("utf-8")) <= LESSON_TEXT_LIMIT:
        return text
    st.error(f"Type a {what} of 1 to {LESSON_TEXT_LIMIT} bytes.")
    return None

model, choice = current_model()
st.title("Learn: how a memory that learns while it reads works")
st.caption(f"The demos run on the current model ({shown_label(choice)}) with a fresh memory each time; "
           "they do not touch your Explore memory.")

# Short labels: all five tabs fit a 1280-px screen (longer ones pushed the last tab out of sight).
store, repeat, cms, recall, forget = st.tabs(["Hebbian vs delta", "Surprise falls on repeats", "CMS rates", "Recall",
                                              "Updates off"])

with store:
    st.markdown(
        "A memory is a matrix **M** that maps a *key* vector to a *value* vector. Writing a pair changes M; "
        "reading multiplies M by the key.\n\n"
        "- **Hebbian rule**: `M += v kᵀ` adds every pair on top of what is there. Keys that look alike "
        "(here: words sharing letters) bleed into each other, and writing again only makes M bigger.\n"
        "- **Delta rule**: `M += (v - M k) kᵀ` writes only the *error*, what M gets wrong for this key. "
        "Writing a pair it already knows changes nothing, and a few passes untangle similar keys.\n\n"
        "Edit the store (one `key = value` per line), choose how many passes to write it, and compare.")
    text = st.text_area("Key-value store", lessons.DEFAULT_STORE, key="learn_store", height=160)
    passes = st.slider("Passes over the store", 1, lessons.MAX_PASSES, lessons.DEFAULT_PASSES, key="learn_passes")
    ready = predict("store", f"after {passes} pass{'es' if passes > 1 else ''}, which rule recalls more pairs right?",
                    lessons.STORE_OUTCOMES)
    if st.button("Write and recall", key="learn_store_run", type="primary", disabled=not ready,
                 help=None if ready else WAIT_HELP):
        pairs, notices = lessons.parse_store(text)
        for notice in notices:
            st.warning(notice)
        if not pairs:
            st.error("The store is empty: write lines like `cat = meow`.")
        else:
            table = lessons.hebbian_vs_delta(pairs, passes=passes)
            right_h = (table["hebbian recalls"] == table["stored"]).mean()
            right_d = (table["delta recalls"] == table["stored"]).mean()
            c1, c2 = st.columns(2)
            c1.metric("Hebbian: recalled right", f"{right_h:.0%}")
            c1.caption(f"mean recall error {table['hebbian error'].mean():.3f}")
            c2.metric("Delta rule: recalled right", f"{right_d:.0%}")
            c2.caption(f"mean recall error {table['delta error'].mean():.3f}")
            curve = lessons.passes_curve(pairs)
            show_verdict(lessons.store_verdict(curve, passes))
            st.plotly_chart(lessons.passes_figure(curve, passes), config=PLOT_CONFIG, key="learn_passes_fig")
            st.plotly_chart(lessons.store_figure(table), config=PLOT_CONFIG, key="learn_store_fig")
            st.dataframe(for_people(table), hide_index=True, key="learn_store_table")
            st.caption("Keys are 16-dimensional vectors made from each word's letter trigrams; values are random "
                       "32-dimensional vectors; 'recalls' is the stored value nearest to what the memory returns.")
            reveal("store", lessons.store_outcome(table))

with repeat:
    phrase = _lesson_text(
        "**Surprise** is how wrong the memory is about a token before it learns it: `||v - M k||`. The first "
        "time a phrase goes by everything is new; when it comes again the memory has already written those "
        "key-value pairs, so surprise drops copy after copy, in each layer whose memory writes (each layer "
        "has its own memory and its own line below).",
        "phrase", "the cat sat on the mat. ", "repeat", "Read it 4 times",
        ("will surprise on the fourth copy be lower than on the first?", lessons.REPETITION_OUTCOMES))
    if phrase is not None:
        with refusals_shown(), admitted():
            recording, table = lessons.repetition(model, phrase, 4)
            n = len(phrase.encode("utf-8"))
            st.plotly_chart(lessons.surprise_by_copy_figure(recording, n, "surprise per memory layer, dotted lines = new copy"),
                            config=PLOT_CONFIG, key="learn_repeat_fig")
            st.dataframe(for_people(table), hide_index=True, key="learn_repeat_table")
            show_verdict(lessons.repetition_verdict(table))
            reveal("repeat", lessons.repetition_outcome(table))

with cms:
    periods = model.config.cms_periods
    st.markdown(
        "The **Continuum Memory System** is a chain of memory levels that learn at different speeds: fast "
        "levels follow the moment, slow ones collect what stays true over longer stretches. "
        + (f"In this model: {lessons.cms_periods_sentence(periods)} " if periods else "")
        + "Each dot below is one update; its size is how much the weights changed.")
    if not periods:
        st.info("This model has no CMS; choose a model with CMS on the Model page.")
    else:
        ready = predict("cms", "compared with level 0, how does the slowest level update?", lessons.CMS_OUTCOMES)
        if st.button(f"Run {lessons.cms_lesson_tokens(periods):,} tokens and show the updates", key="learn_cms_run",
                     type="primary", disabled=not ready, help=None if ready else WAIT_HELP):
            with refusals_shown(), admitted():
                recording = lessons.cms_run(model)
                table, fig = lessons.cms_rates(recording, layer=0)
                st.plotly_chart(fig, config=PLOT_CONFIG, key="learn_cms_fig")
                st.dataframe(for_people(table), hide_index=True, key="learn_cms_table")
                show_verdict(lessons.cms_verdict(table, recording.n_tokens))
                reveal("cms", lessons.cms_outcome(table))

with recall:
    st.markdown(
        "**In-context recall**: the text lists key=value facts, then asks for the keys again. Nothing about "
        "these pairs is in the model's parameters; the only way to answer is to remember them from the "
        "text. The table shows, for each answer digit, what the model predicted before seeing it.")
    seed = st.number_input("Sample", 0, 10_000, 0, key="learn_recall_seed")
    ready = predict("recall", "how many answer digits will the model get right?", lessons.RECALL_OUTCOMES)
    if st.button("Ask", key="learn_recall_run", type="primary", disabled=not ready, help=None if ready else WAIT_HELP):
        with refusals_shown(), admitted():
            lesson = lessons.recall_lesson(model, seed=int(seed))
            st.code(lesson.text, language=None, wrap_lines=True)
            learning, off = st.columns(2)
            learning.metric("Answer digits predicted right", f"{lesson.accuracy:.0%}", help="Chance is about 10% (ten digits).")
            off.metric("The same with test-time updates off", f"{lesson.frozen:.0%}",
                       help="The memory stays at its initial state while reading: what its writes add to recall.")
            show_verdict(lesson.checks)
            reveal("recall", lesson.outcome)
            st.dataframe(for_people(lesson.table), hide_index=True, key="learn_recall_table")
            if choice.kind == "preset":
                st.caption("This is a random-init model: expect chance level. Load the trained checkpoint on the "
                           "Model page to see recall.")

with forget:
    passage = _lesson_text(
        "Read a passage, then read it again while the state carries over. With **test-time updates** on, the "
        "memory wrote the passage the first time, so the second reading is less surprising. With updates "
        "**off**, the memory stays exactly as it started, so whatever drop remains is not the memory's doing.",
        "passage", "a quiet river bends past the old mill. ", "forget", "Read twice, updates on and off",
        ("with updates on, is the second reading less surprising than the first?", ("yes", "no")))
    if passage is not None:
        with refusals_shown(), admitted():
            table, _ = lessons.forgetting(model, passage)
            st.dataframe(for_people(table), hide_index=True, key="learn_forget_table")
            checks = lessons.forgetting_verdict(table)
            show_verdict(checks)
            reveal("forget", "yes" if checks[0][0] else "no")

    st.divider()
    st.markdown(
        "**When the second reading is not a copy.** The memory wrote the passage's words in the order they "
        "came. Read it again with its sentences shuffled, with one byte in ten changed, or paraphrased: how much "
        "of the first reading still helps? Each second reading is read with the memory learning, after a first "
        "reading it **wrote** and after one it **did not** (updates off for the first reading only), so the "
        "ratio is what the first reading left behind. The passage and its paraphrase are text no training "
        "step saw.")
    st.caption(f"Passage: {lessons.REREAD_EXAMPLE[0]}  \nParaphrase: {lessons.REREAD_EXAMPLE[1]}")
    if st.button("Reread four ways", key="learn_variants_run"):
        with refusals_shown(), admitted():
            variants = lessons.reread_variants(model, *lessons.REREAD_EXAMPLE)
            st.dataframe(for_people(variants.drop(columns="text")), hide_index=True, key="learn_variants_table")
            show_verdict(lessons.reread_variants_verdict(variants))
