"""Validate: run the validation suite (nested_learning.validation) on the current model and show what
held, with the numbers behind each verdict; the shipped checkpoint's saved report is shown beside it."""
from __future__ import annotations

import time

import streamlit as st

from app_pages import common
from nested_learning.validation import run_suite
from nested_learning.viz import models, validation_view

model, choice = common.current_model()
st.title("Validate")
st.markdown(
    "Five claims about test-time learning, each an experiment with controls, 95% bootstrap intervals and "
    "a pass rule fixed before any number was seen, plus module-level exactness (`docs/validation.md`). "
    "**Full** settings use 100 sequences per condition (about two minutes on 2 CPUs for the default model); "
    "**quick** keeps every code path with tiny counts: its numbers prove nothing.")


def show_results(results, caption: str, key: str):
    st.caption(caption)
    summary = validation_view.summary_frame(results)
    st.dataframe(summary, hide_index=True, key=f"{key}_summary")
    st.markdown(f"**{int((summary['result'] == 'PASS').sum())} of {len(results)} properties hold** under their pass rules.")
    for result in results:
        with st.expander(f"{result.title}: {'PASS' if result.passed else 'FAIL'}"):
            st.markdown(f"**Claim.** {result.claim}\n\n**Pass rule.** {result.pass_rule}")
            left, right = st.columns([1, 2])
            left.dataframe(validation_view.checks_frame(result), hide_index=True)
            right.dataframe(validation_view.metrics_frame(result), hide_index=True)
            for name, frame in validation_view.table_frames(result).items():
                st.caption(name)
                st.dataframe(frame, hide_index=True)
            for note in result.notes:
                st.caption(f"Note: {note}")


with st.container(border=True):
    left, right = st.columns([3, 1])
    only = left.multiselect("Experiments", validation_view.experiment_names(), default=validation_view.experiment_names(),
                            key="validate_only")
    settings = right.segmented_control("Settings", ["quick", "full"], default="quick", key="validate_settings")
    if st.button("Run the validation suite", type="primary", key="validate_run", disabled=not only):
        progress = st.progress(0.0, text="Starting...")
        started = time.perf_counter()
        results = run_suite(model, quick=settings != "full", only=only,
                            progress=lambda fraction, message: progress.progress(fraction, text=message))
        progress.empty()
        st.session_state.validate_results = (common.shown_label(choice), settings, results,
                                             time.perf_counter() - started)

stored = st.session_state.get("validate_results")
if stored:
    label, settings, results, seconds = stored
    show_results(results, f"Run now on {label}, {settings} settings, in {seconds:.1f} s.", "live")

if choice.kind == "shipped" and (saved := validation_view.saved_report(models.DEFAULT_CHECKPOINT)):
    meta, saved_results = saved
    st.subheader("Saved report for the shipped checkpoint")
    show_results(saved_results, f"From `{meta.get('command', 'python -m nested_learning validate')}`, "
                 f"finished {meta.get('finished')}, {meta.get('settings')} settings, "
                 f"{meta.get('wall_time_s', 0):.0f} s.", "saved")
