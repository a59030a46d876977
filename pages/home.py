"""Home page: until the full dashboard lands, run the model on a text and show what its memory did."""
import streamlit as st
import torch

from nested_learning import Ablation, ByteTokenizer, HopeTransformer
from nested_learning.device import resolve_device

MAX_BYTES = 2000


@st.cache_resource
def load_model() -> HopeTransformer:
    # Parameters are loaded once per server and never mutated: every run passes its own state.
    return HopeTransformer.from_preset("hope", device=resolve_device("auto"), seed=0).eval()


st.title("Nested Learning Explorer")
st.write("A Hope model whose memory weights change while it reads. This page runs a seeded random-init "
         "model; the dashboard with heatmaps, comparisons and lessons is being built.")
text = st.text_area("Text", "the cat sat on the mat. the cat sat on the mat.", max_chars=MAX_BYTES)
updates = st.toggle("Test-time memory updates", value=True)
if st.button("Run", type="primary"):
    ids = ByteTokenizer().encode(text)
    if not ids:
        st.warning("Type some text first.")
    elif len(ids) > MAX_BYTES:
        st.warning(f"Text is {len(ids)} bytes; the limit here is {MAX_BYTES}.")
    else:
        model = load_model()
        tokens = torch.tensor([ids], device=model.device)
        with torch.no_grad():
            out = model(tokens, ablation=Ablation(test_time_updates=updates))
            loss = torch.nn.functional.cross_entropy(out.logits[0, :-1], tokens[0, 1:]).item() if len(ids) > 1 else float("nan")
        st.metric("Next-byte loss (nats)", f"{loss:.3f}")
        st.caption(f"{len(ids)} bytes read on {model.device}; memory position {out.state.position}.")
