"""What a page derives from a run (figures, spans, the player's payload), built once and reused by later
reruns: Streamlit then sends an unchanged figure by reference only. No Streamlit here."""
from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Any


class RunMemo:
    """Per name, the value built for the last (run, key) asked: asking again for the same run (the same
    object) and key reuses it; another run or key rebuilds it and lets the old one go."""

    def __init__(self):
        self._kept: dict[str, tuple[object, Hashable, Any]] = {}

    def get(self, name: str, run: object, key: Hashable, build: Callable[[], Any]) -> Any:
        kept = self._kept.get(name)
        if kept is None or kept[0] is not run or kept[1] != key:
            kept = self._kept[name] = (run, key, build())
        return kept[2]
