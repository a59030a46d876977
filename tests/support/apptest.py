"""Reading a Streamlit AppTest: charts by key, tables by column, metrics by label, and no errors."""
import base64
import json
from pathlib import Path

import numpy as np
import pandas as pd

APP = str(Path(__file__).resolve().parents[2] / "app.py")


def arrays(value):
    """Plotly JSON arrays (plain lists or typed base64 'bdata') as numpy."""
    if isinstance(value, dict) and "bdata" in value:
        out = np.frombuffer(base64.b64decode(value["bdata"]), dtype=np.dtype(value["dtype"]))
        shape = value.get("shape")
        return out.reshape([int(n) for n in str(shape).split(",")]) if shape is not None else out
    return np.asarray(value)


def figure(at, key: str) -> dict:
    for element in at.get("plotly_chart"):
        if element.key == key:
            return json.loads(element.proto.spec)
    raise AssertionError(f"no chart {key!r}; charts: {[e.key for e in at.get('plotly_chart')]}")


def memory_player(at) -> tuple[dict, dict, dict]:
    """Explore's memory player: (its small JSON data: run id and token; the payload's header; its arrays)."""
    from nested_learning.viz.player import read_payload
    instances = [e.proto for e in at.get("bidi_component") if e.proto.component_name == "nle_memory_player"]
    payload = next(p.bytes for p in instances if p.WhichOneof("data") == "bytes")
    data = next(json.loads(p.json) for p in instances if p.WhichOneof("data") == "json")
    return (data, *read_payload(payload))


def table(at, column: str) -> pd.DataFrame:
    """The table that has ``column`` (st.dataframe keys are not visible to streamlit.testing)."""
    for element in at.dataframe:
        if column in element.value.columns:
            return element.value
    raise AssertionError(f"no table with column {column!r}")


def has_chart(at, key: str) -> bool:
    return any(e.key == key for e in at.get("plotly_chart"))


def ok(at):
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]
    return at


def metric(at, label: str) -> str:
    return next(m.value for m in at.metric if m.label == label)
