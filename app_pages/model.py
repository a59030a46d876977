"""Model: choose the model this session runs (shipped checkpoint, seeded random init, or an upload),
its device, and see its config, parameter counts and training curve."""
from __future__ import annotations

import json

import pandas as pd
import streamlit as st

from nested_learning.config import PRESETS
from nested_learning.viz import models, training_view
from nested_learning.viz.safe_text import escape_markdown
from app_pages.model_loading import current_model, load_upload, set_model, shared_model, shown_label
from app_pages.serving import admitted, refusals_shown
from app_pages.widgets import PLOT_CONFIG, for_people

model, choice = current_model()
st.title("Model")
st.caption(f"This session runs: {shown_label(choice)}. Switching model resets this session's memory; other sessions "
           "are not affected.")

with st.container(border=True):
    shipped = models.DEFAULT_CHECKPOINT.is_file()
    sources = (["shipped"] if shipped else []) + ["preset", "upload"]
    names = {"shipped": f"Shipped checkpoint ({models.DEFAULT_CHECKPOINT.name})", "preset": "Random init (seeded)",
             "upload": "Upload a checkpoint"}
    source = st.radio("Source", sources, format_func=names.__getitem__, horizontal=True, key="model_source",
                      index=sources.index(choice.kind) if choice.kind in sources else 0)
    if not shipped:
        st.caption(f"No shipped checkpoint: {models.DEFAULT_CHECKPOINT.name} is not in assets/.")
    devices = models.device_options()
    device = st.selectbox("Device", devices, index=devices.index(choice.device) if choice.device in devices else 0,
                          key="model_device", help="cuda appears when a GPU is available.")
    if source == "preset":
        preset = st.selectbox("Preset", list(PRESETS), key="model_preset",
                              index=list(PRESETS).index(choice.name) if choice.kind == "preset" and choice.name in PRESETS else 0)
        target = models.ModelChoice("preset", preset, device)
    elif source == "shipped":
        target = models.ModelChoice("shipped", models.DEFAULT_CHECKPOINT.name, device)
    else:
        target = None
        upload = st.file_uploader("Checkpoint (.safetensors)", type=["safetensors"], key="model_upload")
        if upload is not None and st.button("Load this checkpoint", key="model_load_upload", type="primary"):
            problem = None
            with refusals_shown(), admitted():  # a load is CPU and memory: it queues like a run
                with st.spinner("Checking and loading the checkpoint..."):
                    problem = load_upload(upload.name, upload.getvalue(), device) or False
            if problem:
                st.error(f"Not loaded, the current model stays: {problem}", icon=":material/error:")
            elif problem is False:
                st.rerun()
    if target is not None and target != choice:
        if st.button(f"Use {shown_label(target)}", key="model_apply", type="primary"):
            loaded = False
            with refusals_shown(), admitted():  # a load queues like a run
                try:
                    shared_model(target.kind, target.name, target.device)
                    loaded = True
                except Exception as e:  # noqa: BLE001 - any load failure keeps the current model
                    st.error(f"Not loaded, the current model stays: {escape_markdown(e, limit=300)}")
            if loaded:
                set_model(target)
                st.rerun()

config = model.config
left, right = st.columns(2)
with left:
    st.subheader("Config")
    st.dataframe(pd.DataFrame({"field": list(config.to_dict()), "value": [json.dumps(v) for v in config.to_dict().values()]}),
                 hide_index=True, key="model_config")
with right:
    st.subheader("Parameters")
    st.dataframe(for_people(models.parameter_table(model)), hide_index=True, key="model_parameters")
    st.download_button("Download this model (.safetensors)", lambda: models.checkpoint_bytes(model),
                       file_name=f"{choice.name.removesuffix('.safetensors')}.safetensors",
                       mime="application/octet-stream", key="model_download", on_click="ignore")

st.subheader("Training curve")
metadata = model.checkpoint_metadata or {}
figure = training_view.training_figure(models.training_metrics(model, choice))
if figure is None:
    st.caption("No training metrics for this model (a training run writes them next to its checkpoint as "
               "*.metrics.jsonl).")
else:
    st.plotly_chart(figure, config=PLOT_CONFIG, key="model_curve")
    st.caption("Training loss in nats per byte, and bits per byte (nats / ln 2) on their own panel. Each dashed "
               "line starts a curriculum stage with new data: a jump there is the harder data, not a divergence.")
if metadata:
    with st.expander("Checkpoint metadata"):
        st.json(metadata, expanded=False)
