"""Nested Learning Explorer: the Streamlit entry point. Run with ``streamlit run app.py``.

Pages live in app_pages/ (not pages/: with a pages/ folder Streamlit falls back to its older folder-based
navigation whenever its page manager is re-created, which streamlit.testing does on every run, and then
runs a page without this script). Figures and logic live in nested_learning.viz."""
import streamlit as st

st.set_page_config(page_title="Nested Learning Explorer", page_icon=":material/neurology:", layout="wide")
# Something on the page before PyTorch and the model load: on a fresh server that takes seconds.
loading = st.empty()
loading.caption("Nested Learning Explorer: loading the model ...")

import torch  # noqa: E402

from app_pages import chrome, classroom  # noqa: E402
from nested_learning.viz.models import TORCH_THREADS  # noqa: E402

torch.set_num_threads(TORCH_THREADS)  # per script thread: each run starts in a new thread
# The default page is served at / yet reserves a path name; "explore" is left to the alias below.
explore = st.Page("app_pages/explore.py", title="Explore", icon=":material/timeline:", default=True, url_path="home")


def explore_alias():
    """/explore (the default page lives at /): the same page and link, not "Page not found"."""
    st.switch_page(explore, query_params=st.query_params.to_dict())


navigation = st.navigation([
    explore,
    st.Page(explore_alias, title="Explore", url_path="explore", visibility="hidden"),
    st.Page("app_pages/compare.py", title="Compare", icon=":material/compare:"),
    st.Page("app_pages/learn.py", title="Learn", icon=":material/school:"),
    st.Page("app_pages/validate.py", title="Validate", icon=":material/fact_check:"),
    st.Page("app_pages/model.py", title="Model", icon=":material/memory:"),
])
chrome.model_notice()
loading.empty()
classroom.larger_type()  # larger type on every page when the sidebar's Classroom mode is on
navigation.run()
chrome.sidebar()  # after the page, so it shows the memory after this run
