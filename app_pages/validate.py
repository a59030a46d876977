"""Validate: run the validation suite (nested_learning.validation) on the current model and show what
held, with the numbers behind each verdict; the shipped checkpoint's saved report is shown beside it."""
from __future__ import annotations

import time

import streamlit as st

from app_pages.model_loading import current_model, shared_baseline, shared_prose, shown_label
from app_pages.serving import admitted, refusals_shown
from app_pages.widgets import PLOT_CONFIG
from nested_learning.validation import run_suite
from nested_learning.validation.suite import heldout_fraction_of
from nested_learning.viz import alike, models, validation_view

model, choice = current_model()
st.title("Validate")
st.markdown(
    "Six claims about test-time learning, each an experiment with 95% bootstrap intervals and a pass rule "
    "fixed before any number was seen (`docs/validation.md`), a loss-by-position curve, and module-level "
    "exactness. The controls isolate the memory: **swap** puts another document's memory in place of this "
    "one's, **reset** the learned initial memory, and the **baseline** is a same-size transformer with the "
    "same attention window trained by the same recipe. *Updates off* is shown as a condition, never as the "
    "control a rule rests on. **Full** settings take a few minutes on 2 CPUs; **quick** keeps every code path "
    "with tiny counts: a smoke test whose numbers prove nothing.")


def show_results(results, quick: bool, caption: str, key: str):
    st.caption(caption)
    st.markdown(validation_view.headline(results, quick))
    summary = validation_view.summary_frame(results, quick)
    st.dataframe(summary, hide_index=True, key=f"{key}_summary")
    for result in results:
        with st.expander(f"{result.title}: {validation_view.result_label(result, quick)}"):
            st.markdown(f"**Claim.** {result.claim}\n\n**Pass rule.** {result.pass_rule}")
            left, right = st.columns([1, 2])
            left.dataframe(validation_view.checks_frame(result), hide_index=True)
            right.dataframe(validation_view.metrics_frame(result), hide_index=True)
            for i, figure in enumerate(validation_view.curve_figures(result)):
                st.plotly_chart(figure, key=f"{key}_{result.name}_curve_{i}", config=PLOT_CONFIG)
            for name, frame in validation_view.table_frames(result).items():
                st.caption(name)
                st.dataframe(frame, hide_index=True)
            for note in result.notes:
                st.caption(f"Note: {note}")


def cancel():
    st.session_state.validate_cancelled = True


controls = st.container(border=True)
with controls:
    left, right = st.columns([3, 1])
    only = left.multiselect("Experiments", validation_view.experiment_names(), default=validation_view.experiment_names(),
                            key="validate_only")
    settings = right.segmented_control("Settings", ["quick", "full"], default="quick", key="validate_settings")
    clicked = st.button("Run the validation suite", type="primary", key="validate_run", disabled=not only)
    if st.session_state.pop("validate_cancelled", False):  # Cancel's rerun stopped the run at its next progress step
        st.info("Cancelled: the run stopped and left no results.", icon=":material/cancel:")
# One slot for this session's results, drawn before a run starts: a new run clears the old ones at once
# (they are not left greyed on the page as if current), and the saved report below stays labelled as saved.
live = st.empty()
if clicked:
    st.session_state.pop("validate_results", None)

if choice.kind == "shipped" and (saved := validation_view.saved_report(models.DEFAULT_CHECKPOINT)):
    meta, saved_results = saved
    st.subheader("Saved report for the shipped checkpoint, not a run of yours")
    with st.expander(f"The saved report ({meta.get('settings')} settings, finished {meta.get('finished')})"):
        show_results(saved_results, meta.get("settings") == "quick",
                     f"Saved report, from `{meta.get('command', 'python -m nested_learning validate')}`, finished "
                     f"{meta.get('finished')}, {meta.get('settings')} settings, {meta.get('wall_time_s', 0):.0f} s.", "saved")

# Tracked open state: closed, it reads no report and draws nothing.
with st.expander("Models trained alike, at every distance (saved measurements)", key="validate_alike",
                 on_change="rerun") as alike_panel:
    if alike_panel.open:
        curves = alike.curves()
        if curves.empty:
            st.caption("No curve reports in reports/ (bench/model_targets.py --only curves,long writes them).")
        else:
            st.plotly_chart(alike.curves_figure(curves), key="alike_curves", config=PLOT_CONFIG)
            st.caption("The shipped model beside models trained by exactly its recipe, measured on the same held-out "
                       "prose and tasks (48 sequences each, 95% intervals): how far back each still finds what it "
                       "read. The transformers keep every token of their window exactly; the 512-token window holds "
                       "as many numbers as one memory layer. Files: "
                       + ", ".join(f"`{path}`" for path in sorted(set(curves["report"]))) + ".")

if clicked:  # full settings share the server's validation slot(s); quick ones are short model runs
    with controls, refusals_shown(), admitted("validation" if settings == "full" else "run"):
        running = st.empty()
        with running.container():
            progress = st.progress(0.0, text="Starting...")
            st.button("Cancel", key="validate_cancel", on_click=cancel, help="Stops the run at its next step.")
        started = time.perf_counter()
        baseline = shared_baseline(choice.device) if choice.kind == "shipped" else None
        prose = shared_prose(heldout_fraction_of(model))
        results = run_suite(model, quick=settings != "full", only=only, prose=prose, baseline=baseline,
                            progress=lambda fraction, message: progress.progress(fraction, text=message))
        running.empty()
        st.session_state.validate_results = (shown_label(choice), settings, results, time.perf_counter() - started)

stored = st.session_state.get("validate_results")
if stored:
    label, settings, results, seconds = stored
    with live.container():
        st.subheader("Your run")
        show_results(results, settings != "full", f"Run now on {label}, {settings} settings, in {seconds:.1f} s"
                     f"{'' if models.baseline_checkpoint().is_file() else ' (no baseline checkpoint in assets/)'}.", "live")
