"""The Streamlit app starts and runs a sequence (AppTest, no browser)."""
from pathlib import Path

from streamlit.testing.v1 import AppTest

APP = str(Path(__file__).resolve().parent.parent / "app.py")


def test_home_page_runs_the_model():
    app = AppTest.from_file(APP, default_timeout=60).run()
    assert not app.exception
    app.button[0].click().run()
    assert not app.exception
    assert app.metric[0].label == "Next-byte loss (nats)"
    assert float(app.metric[0].value) > 0
