"""The memory player: M_t and its write at every token of a run, scrubbed and played in the browser.

A run's payload (nested_learning.viz.player) goes to the browser once per run, layer and head; the
slider, Play and the step buttons redraw there, and only a settled token comes back (``on_settle``),
for the panels the server draws. This file only mounts the component (memory_player.js)."""
from __future__ import annotations

import uuid
from pathlib import Path

import streamlit as st

from nested_learning.viz import player

HERE = Path(__file__).parent
COMPONENT = st.components.v2.component("nle_memory_player", js=(HERE / "memory_player.js").read_text(),
                                       css=(HERE / "memory_player.css").read_text())


def prepare_payload(recording, layer: int, head: int, found: list) -> tuple[str, bytes]:
    """(run id, bytes) for the last (recording, layer, head) of this session: a rerun sends the same bytes,
    which Streamlit then sends by reference only."""
    cached = st.session_state.get("memory_player_payload")
    if cached is None or cached[0] is not recording or cached[1:3] != (layer, head):
        run_id = uuid.uuid4().hex[:12]
        cached = (recording, layer, head, run_id, player.payload(recording, layer, head, run_id, found=found))
        st.session_state.memory_player_payload = cached
    return cached[3], cached[4]


def memory_player(recording, layer: int, head: int, token: int, on_settle, found: list, panels: bool = True,
                  text: bool = True) -> None:
    """Mount the player at ``token``; ``on_settle(token)`` runs when the browser reports a settled token;
    ``found``: the run's repeats (its tour starts there).
    Without ``panels`` (its heatmaps) or ``text`` (the coloured text) only the rest shows: classroom mode
    shows one figure at a time."""
    run_id, data = prepare_payload(recording, layer, head, found)
    COMPONENT(key="memory_player_data", data=data)

    def settled():
        value = st.session_state.memory_player.get("settled") or {}
        token = value.get("token") if isinstance(value, dict) and value.get("run") == run_id else None
        if isinstance(token, int) and 0 <= token < recording.n_tokens:  # browser input: checked
            on_settle(token)

    COMPONENT(key="memory_player", data={"run": run_id, "token": int(token), "panels": panels, "text": text},
              on_settled_change=settled)

