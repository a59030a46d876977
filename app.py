"""Nested Learning Explorer: Streamlit entry point (pages live in pages/)."""
import streamlit as st

st.set_page_config(page_title="Nested Learning Explorer", layout="wide")
navigation = st.navigation([st.Page("pages/home.py", title="Home", default=True)])
navigation.run()
