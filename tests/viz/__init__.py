"""Tests of figures, sessions, lessons and everything the dashboard computes (no Streamlit)."""
