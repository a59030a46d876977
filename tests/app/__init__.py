"""Tests of the Streamlit app: AppTest pages and real-browser tests."""
