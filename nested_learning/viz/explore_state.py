"""Explore's state between reruns, as one value with pure transitions (no Streamlit here).

The page keeps its state in ``st.session_state`` under the keys in :data:`KEYS` (its widgets' own keys,
so widgets, links and tests keep working); :func:`update` reads an :class:`ExploreState` from such a
mapping, applies a transition and writes back only the fields that changed (a widget's key may not be
written once the widget is drawn, and an unchanged one never is).

What it holds: the input's choices and the figure settings (what a link carries), the scrubbed token
(``token``; the browser's player reports where it settled), the token a link asks for until its run
(``pending_token``), what starts a run (``autorun``: a demo or a link, once; ``run_asked_at``: Run's
click), whether the input is folded away, and the last click applied per chart (a chart keeps its
selection across reruns, so a click must move the scrubber once). Play itself runs in the browser: the
server sees only the token where it settles.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping, MutableMapping
from dataclasses import dataclass, fields, replace

from ..config import HopeConfig
from .view import View, clamp_token, fit_choices

CMS_VIEWS = ("weights", "change in this run")  # the CMS panels: View.cms_change picks the second
# The 2-layer memory's matrices (Recording.memory_matrices) as the Matrix choice names them; View.hidden_matrix picks W2.
MATRIX_CHOICES = {"memory": "W1 (values x hidden)", "hidden_memory": "W2 (hidden x keys)"}
CHARTS = ("timeline", "text", "repeats", "gains")  # the charts and tables whose clicks scrub

# Field -> session key. The widgets' keys are kept as they were: links, tests and the browser use them.
KEYS = {
    "source": "explore_source", "text": "explore_text", "preset": "view_preset",
    "layer": "view_layer", "head": "view_head", "matrix": "view_matrix", "off": "view_off",
    "all_heads": "explore_all_heads", "cms_view": "cms_view", "probe_specific": "probe_specific",
    "token": "explore_token", "pending_token": "pending_token",
    "autorun": "autorun", "run_asked_at": "run_asked_at", "input_folded": "explore_input_folded",
    "clicked_timeline": "explore_clicked_timeline", "clicked_text": "explore_clicked_text",
    "clicked_repeats": "explore_clicked_repeats", "clicked_gains": "explore_clicked_gains",
}


@dataclass(frozen=True)
class ExploreState:
    # The input and the figure settings (widgets; None: not drawn yet, the widget's default applies)
    source: str | None = None  # "Type", "Preset" or "Upload"
    text: str | None = None  # the typed text
    preset: str | None = None
    layer: int | None = None
    head: int | None = None
    matrix: str | None = None  # the 2-layer memory's matrix shown: "memory" (W1) or "hidden_memory" (W2)
    off: tuple[str, ...] | None = None
    all_heads: bool | None = None
    cms_view: str | None = None  # one of CMS_VIEWS
    probe_specific: bool | None = None
    # The scrubber and what starts a run
    token: int | None = None  # the scrubbed token of the shown run
    pending_token: int | None = None  # a link's token, applied when its run is read
    autorun: bool = False  # run once on this rerun (a demo, or a link with an input)
    run_asked_at: int | None = None  # the memory version Run was pressed on
    input_folded: bool = False
    clicked_timeline: tuple | None = None  # the last selection applied, per chart
    clicked_text: tuple | None = None
    clicked_repeats: tuple | None = None  # the repeat table's picked row
    clicked_gains: tuple | None = None  # the verdict's table of the tokens the memory helped most

    @classmethod
    def load(cls, session: Mapping) -> ExploreState:
        values = {name: session.get(key) for name, key in KEYS.items() if session.get(key) is not None}
        if "off" in values:
            values["off"] = tuple(values["off"])
        return cls(**values)

    def store(self, session: MutableMapping, before: ExploreState) -> None:
        """Write the fields that differ from ``before`` (None: the key is removed)."""
        for f in fields(self):
            value = getattr(self, f.name)
            if value == getattr(before, f.name):
                continue
            if value is None:
                session.pop(KEYS[f.name], None)
            else:
                session[KEYS[f.name]] = list(value) if f.name == "off" else value

    # ---- what the page reads
    @property
    def linked_text(self) -> str | None:
        """The typed text, which links to this view carry (None for a preset or an upload)."""
        return self.text if self.source == "Type" else None

    def shows_start(self, runs: int) -> bool:
        """Whether the start view (the demos) shows: nothing read yet, nothing about to run, input not folded."""
        return runs == 0 and not self.autorun and not self.input_folded

    def should_run(self, run_clicked: bool, runs: int) -> bool:
        """Run was clicked, or a demo or a link asks for a run (from a fresh memory only)."""
        return run_clicked or (self.autorun and runs == 0)

    def scrub_position(self, n_tokens: int) -> tuple[int, str | None]:
        """The token the panels show in a run of ``n_tokens`` (the last one when none was chosen), with a
        notice when the chosen one was past the end (a link's token)."""
        view, notice = clamp_token(View(token=self.token), n_tokens)
        return (view.token if view.token is not None else n_tokens - 1), notice

    def view(self, token: int | None) -> View:
        """The shareable view: the input (the typed text, else the preset), layer, head, switches, settings."""
        text = self.linked_text
        return View(None if text is not None else self.preset, int(self.layer or 0), int(self.head or 0), token,
                    tuple(self.off or ()), text, None, bool(self.all_heads), self.cms_view == CMS_VIEWS[1],
                    self.probe_specific is False, self.matrix == "hidden_memory")

    # ---- transitions
    def arrive(self, view: View) -> ExploreState:
        """A link (or an edited URL) arrives: its view goes into the widgets. One with a text or a preset
        runs once, from a fresh memory; its token waits for that run."""
        new = replace(self, layer=view.layer, head=view.head, off=tuple(view.off), all_heads=view.all_heads,
                      matrix="hidden_memory" if view.hidden_matrix else "memory",
                      probe_specific=not view.probe_cosine, cms_view=CMS_VIEWS[view.cms_change],
                      pending_token=view.token)
        if view.text is not None:
            new = replace(new, text=view.text)
        elif view.preset:
            new = replace(new, preset=view.preset)
        if view.text is not None or view.preset is not None:
            new = replace(new, source="Type" if view.text is not None else "Preset", autorun=True)
        return new

    def fit(self, config: HopeConfig) -> ExploreState:
        """Remembered choices made valid for the current model (another model may have fewer layers)."""
        layer, head, off = fit_choices(config, self.layer, self.head, self.off)
        matrix = self.matrix if config.memory and config.memory_depth > 1 else None  # one matrix: nothing to choose
        return replace(self, layer=layer, head=head, off=off, matrix=matrix)

    def start_demo(self, preset: str) -> ExploreState:
        return replace(self, preset=preset, source="Preset", autorun=True, input_folded=True)

    def press_run(self, version: int) -> ExploreState:
        """Run's click: the memory version it was pressed on (a Reset after it wins); the input folds away."""
        return replace(self, run_asked_at=version, input_folded=True)

    def keep_first(self, kept: str) -> ExploreState:
        """The input cut to what the next run can read, as typed text."""
        return replace(self, source="Type", text=kept)

    def trigger_taken(self) -> ExploreState:
        """This rerun has read what starts a run (a run happens at most once per click, demo or link)."""
        return replace(self, autorun=False, run_asked_at=None)

    def run_read(self, n_tokens: int) -> ExploreState:
        """A run of ``n_tokens`` was read: the scrubber goes to the link's token, else to the last token."""
        return replace(self, token=self.pending_token if self.pending_token is not None else n_tokens - 1,
                       pending_token=None)

    def click(self, chart: str, selection: tuple, token: int | None) -> ExploreState:
        """A chart's selection moves the scrubber to ``token``, once: the chart keeps its selection across
        reruns, so a selection already applied (or one without a token) changes nothing."""
        assert chart in CHARTS, chart
        memo = f"clicked_{chart}"
        if token is None or selection == getattr(self, memo):
            return self
        return replace(self, token=token, **{memo: selection})

    def click_timeline(self, positions: tuple[int, ...], start_position: int, n_tokens: int) -> ExploreState:
        """A click (or a box's start) on the timelines, in stream positions: the first, within the run."""
        token = min(max(positions[0] - start_position, 0), n_tokens - 1) if positions else None
        return self.click("timeline", tuple(positions), token)

    def click_row(self, chart: str, rows: tuple[int, ...], tokens: list[int]) -> ExploreState:
        """A row picked in a table whose row i is about token ``tokens[i]`` (the repeats, the verdict's
        gains): the scrubber goes there. A row past the table (a stale selection) changes nothing."""
        token = tokens[rows[0]] if rows and 0 <= rows[0] < len(tokens) else None
        return self.click(chart, tuple(rows), token)

    def click_text(self, start_position: int, token: int | None) -> ExploreState:
        return self.click("text", (start_position, token), token)

    def settle(self, token: int) -> ExploreState:
        """The scrubber (the browser's player or the server's slider) rests on ``token``."""
        return replace(self, token=token)

    def reset(self) -> ExploreState:
        """The memory was reset: a fresh start shows the input (and the demos) again."""
        return replace(self, input_folded=False)


def update(session: MutableMapping, transition: Callable[..., ExploreState], *args) -> ExploreState:
    """Apply ``transition`` (an ExploreState method, with ``args``) to the state in ``session``."""
    before = ExploreState.load(session)
    after = transition(before, *args)
    after.store(session, before)
    return after


def settled_token(report, run_id: str, n_tokens: int) -> int | None:
    """The token the browser's player reports it settled on, or None: a report is browser input, so it
    counts only for this run (``run_id``) and a token inside it."""
    value = report.get("settled") if isinstance(report, Mapping) else None
    if not isinstance(value, Mapping) or value.get("run") != run_id:
        return None
    token = value.get("token")
    return token if isinstance(token, int) and not isinstance(token, bool) and 0 <= token < n_tokens else None
