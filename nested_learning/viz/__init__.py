"""Figures and session logic of the dashboard, as pure functions tested without Streamlit.

``timelines`` / ``heatmaps`` / ``compare`` build Plotly figures from a Recording; ``session`` holds one
browser session's memory; ``view`` parses the shareable URL; ``safe_text`` keeps user text from being read as markup;
``lessons`` and ``checks`` are the Learn and Validate pages' computations; ``models`` picks the model.
"""
