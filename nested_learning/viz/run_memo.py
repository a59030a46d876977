"""What a page derives from a run (figures, spans, the player's payload), built once and reused by later
reruns: Streamlit then sends an unchanged figure by reference only. No Streamlit here."""
from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Any


class RunMemo:
    """Values derived from one run (the last one asked about, by identity): per name, the value built for the
    last key asked. Asking about another run lets the previous run's values go."""

    def __init__(self):
        self._run: object = None
        self._kept: dict[str, tuple[Hashable, Any]] = {}

    def get(self, name: str, run: object, key: Hashable, build: Callable[[], Any]) -> Any:
        if run is not self._run:
            self._run, self._kept = run, {}
        kept = self._kept.get(name)
        if kept is None or kept[0] != key:
            kept = self._kept[name] = (key, build())
        return kept[1]
