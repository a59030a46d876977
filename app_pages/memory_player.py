"""The memory player: M_t and its write at every token of a run, scrubbed and played in the browser.

A run's payload (nested_learning.viz.player) goes to the browser once per run, layer and head; the
slider, Play and the step buttons redraw there, and only a settled token comes back (``on_settle``),
for the panels the server draws. This file only mounts the component (memory_player.js)."""
from __future__ import annotations

import uuid
from pathlib import Path

import streamlit as st

from nested_learning.viz import player
from nested_learning.viz.explore_state import settled_token
from nested_learning.viz.run_memo import RunMemo

HERE = Path(__file__).parent
COMPONENT = st.components.v2.component("nle_memory_player", js=(HERE / "memory_player.js").read_text(),
                                       css=(HERE / "memory_player.css").read_text())


def prepare_payload(memo: RunMemo, recording, layer: int, head: int, found: list, matrix: str = "memory") -> tuple[str, bytes]:
    """(run id, bytes) for the last (recording, layer, head, matrix) of this session: a rerun sends the same
    bytes, which Streamlit then sends by reference only."""
    def build():
        run_id = uuid.uuid4().hex[:12]
        return run_id, player.payload(recording, layer, head, run_id, found=found, matrix=matrix)
    return memo.get("player_payload", recording, (layer, head, matrix), build)


def memory_player(memo: RunMemo, recording, layer: int, head: int, token: int, on_settle, found: list,
                  panels: bool = True, text: bool = True, matrix: str = "memory") -> None:
    """Mount the player at ``token``; ``on_settle(token)`` runs when the browser reports a settled token;
    ``found``: the run's repeats (its tour starts there).
    Without ``panels`` (its heatmaps) or ``text`` (the coloured text) only the rest shows: classroom mode
    shows one figure at a time. ``matrix``: the 2-layer memory's W1 ("memory") or W2 ("hidden_memory")."""
    run_id, data = prepare_payload(memo, recording, layer, head, found, matrix)
    COMPONENT(key="memory_player_data", data=data)

    def settled():
        if (token := settled_token(st.session_state.memory_player, run_id, recording.n_tokens)) is not None:
            on_settle(token)

    COMPONENT(key="memory_player", data={"run": run_id, "token": int(token), "panels": panels, "text": text},
              on_settled_change=settled)

