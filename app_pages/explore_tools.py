"""Explore's tools around a run (not a page): its verdict against controls, earlier runs overlaid,
and a prompt continued from the memory. Each takes what it needs from the page."""
from __future__ import annotations

import streamlit as st

from app_pages.model_loading import shared_baseline
from app_pages.serving import admitted, refusals_shown
from app_pages.widgets import PLOT_CONFIG, selected_rows
from nested_learning.viz import explore_state, generation, models, timelines
from nested_learning.viz.explore_state import ExploreState
from nested_learning.viz.repeats import MIN_REPEAT
from nested_learning.viz.safe_text import escape_markdown
from nested_learning.viz.verdict import BLOCK, run_verdict


SAVED_RUNS = 4  # recordings loaded back from files, per session


def overlay_panel(session):
    """Earlier runs of this session, and recordings saved before (downloaded, loaded back), overlaid on this
    one: by token index in each run, or aligned on a text they share."""
    with st.expander("Overlay earlier runs and saved recordings", key="explore_overlay", on_change="rerun") as panel:
        if not panel.open:  # a closed panel builds and sends nothing
            return
        saved = st.session_state.setdefault("saved_runs", {})
        upload = st.file_uploader("Load a saved recording (.safetensors, from 'Download recording')", type=["safetensors"],
                                  key="overlay_upload")
        if upload is not None and upload.file_id != st.session_state.get("overlay_upload_seen"):
            st.session_state.overlay_upload_seen = upload.file_id
            try:
                with admitted():
                    recording = models.load_saved_recording(upload.name, upload.getvalue())
            except ValueError as e:
                st.error(escape_markdown(str(e), limit=300), icon=":material/block:")
            else:
                saved[f"{upload.name} (saved)"] = timelines.overlay_streams(recording)
                while len(saved) > SAVED_RUNS:
                    saved.pop(next(iter(saved)))
        earlier = [name for name in session.recordings if session.recordings[name] is not session.last.recording]
        choices = earlier + list(saved)
        if not choices:
            st.caption("No earlier run yet: press Run again, or load a recording saved with 'Download recording'.")
            return
        chosen = st.multiselect("Runs", choices, default=choices[-1:], key="overlay_runs")
        align_on = st.text_input("Align on the text (optional)", key="overlay_align", max_chars=200,
                                 help="Each run's tokens are counted from the first time it read this text.")
        shown = {name: session.recordings.get(name) or saved.get(name) for name in chosen}
        shown = {name: recording for name, recording in shown.items() if recording is not None}
        shown[f"{session.history[-1].name} (this run)"] = session.last.recording
        st.plotly_chart(timelines.overlay_figure(shown, align_on), config=PLOT_CONFIG, key="overlay")
        st.caption(f"The last {len(session.recordings)} runs are kept for overlays; the sidebar lists every run since "
                   f"Reset. Up to {SAVED_RUNS} saved recordings stay loaded in this session.")


def verdict_panel(model, choice, result):
    """One click: this run against its controls, said plainly (cached for the run)."""
    cached = st.session_state.get("explore_verdict")
    if cached is not None and cached[0] is result:
        verdict = cached[1]
    elif st.button("What did test-time learning do here?", key="verdict_run",
                   help="Reads the same text with test-time updates off, with the baseline transformer, from a reset "
                        "memory (when this run continued one) and after another document, and compares losses "
                        "with 95% intervals."):
        verdict = None
        with refusals_shown(), admitted(), st.spinner("Reading the text under the controls..."):
            verdict = run_verdict(model, result.recording, result.start_state, shared_baseline(choice.device))
            st.session_state.explore_verdict = (result, verdict)
        if verdict is None:
            return
    else:
        return
    helped, headline = verdict.headline
    (st.success if helped else st.warning)(headline, icon=":material/check_circle:" if helped else ":material/info:")
    for better, sentence in verdict.sentences:
        (st.success if better else st.info)(sentence, icon=":material/check_circle:" if better else ":material/info:")
    # Keyed with their open state tracked: a rerun (a row picked below scrubs the player) keeps them open.
    with st.expander("The numbers", key="verdict_numbers", on_change="rerun") as numbers:
        if numbers.open:
            st.dataframe(verdict.table.style.format(precision=3, na_rep=""), hide_index=True, key="verdict_table")
            st.caption(f"Losses in nats per byte. Differences are this run minus the control (negative: this run did "
                       f"better), per token, with 95% intervals from a bootstrap over {BLOCK}-token blocks. Repeats are "
                       f"the words and sentences of {MIN_REPEAT}+ bytes this run had read before (the green bands).")
    if not verdict.gains.empty:
        with st.expander("The tokens the memory helped most", key="verdict_gains_panel", on_change="rerun") as panel:
            if not panel.open:
                return
            gains = verdict.gains
            explore_state.update(st.session_state, ExploreState.click_row, "gains", selected_rows("verdict_gains"),
                                 gains["token"].tolist())
            st.dataframe(gains.style.format(precision=3), hide_index=True, key="verdict_gains", on_select="rerun",
                         selection_mode="single-row")
            st.caption("Loss (nats) of predicting the byte after each token, in this run and in the same run with "
                       "test-time updates off: where the memory's writes paid off most. Pick a row to scrub there.")


def generation_panel(model, choice, session):
    """Continue a prompt from the session's memory, a reset memory and the baseline, side by side."""
    recording = session.last.recording
    # Tracked open state: the panel stays open across the rerun that Continue makes (and builds nothing closed).
    with st.expander("Continue a prompt from this memory", icon=":material/edit_note:", key="explore_generate",
                     on_change="rerun") as panel:
        if not panel.open:
            return
        st.caption("The model writes a continuation of your prompt three ways: from the memory this session has "
                   "built, from a reset memory, and (when shipped) by the baseline transformer. If the memory learned "
                   "the text it read, prompting with the start of that text brings it back. Your memory is not changed.")
        default = bytes(recording.tokens[:24].tolist()).decode("utf-8", errors="ignore")
        prompt = st.text_input("Prompt", default, key="generate_prompt", max_chars=generation.MAX_PROMPT_TOKENS)
        c1, c2, c3 = st.columns(3)
        n_new = c1.slider("New tokens", 8, generation.MAX_GENERATED_TOKENS, 64, key="generate_tokens")
        temperature = c2.number_input("Temperature (0 = greedy)", 0.0, 5.0, 0.0, 0.1, key="generate_temperature")
        seed = c3.number_input("Seed", 0, 1_000_000, 0, key="generate_seed")
        if st.button("Continue", key="generate_run"):
            with refusals_shown(), admitted():
                baseline = shared_baseline(choice.device)
                rows = generation.continuations(model, prompt, session.state, baseline, n_new, float(temperature), int(seed))
                st.session_state.explore_continuations = (recording, prompt, rows)
        shown = st.session_state.get("explore_continuations")
        if shown is not None and shown[0] is recording:  # kept until the next run, so any rerun still shows them
            for column, row in zip(st.columns(len(shown[2])), shown[2]):
                column.markdown(f"**{row.source}**")
                column.caption(f"memory had read {row.memory_tokens} tokens")
                column.code(row.text, language=None, wrap_lines=True)
