"""Explore: feed text to the model, watch its memory learn token by token. The memory carries across
runs until Reset; the memory player redraws M_t in the browser at any token, and the server draws the rest
when it settles."""
from __future__ import annotations

import math

import streamlit as st

from nested_learning import Ablation
from nested_learning.tokenizer import ByteTokenizer
from nested_learning.viz import models, player, repeats, snippet, text_map, timelines
from nested_learning.viz.presets import TEXT_PRESETS
from nested_learning.viz.safe_text import byte_spans, decode_upload, escape_markdown
from nested_learning.viz.session import MAX_RUN_TOKENS, RunRefused, first_tokens
from nested_learning.viz.view import MAX_LINK_TEXT, encode_text
from nested_learning.viz.compare import switch_label
from nested_learning.viz import explore_state
from nested_learning.viz.explore_state import KEYS, MATRIX_CHOICES, ExploreState
from nested_learning.viz.run_memo import RunMemo
from app_pages import classroom, explore_tools, link
from app_pages.memory import memory_session, reset_button
from app_pages.explore_panels import lazy_section, memory_panels, window_panel
from app_pages.memory_player import memory_player, prepare_payload
from app_pages.model_loading import current_model
from app_pages.serving import admitted, page_still_open, run_deadline
from app_pages.widgets import PLOT_CONFIG, ablation_picker, selected_rows, token_slider

model, choice = current_model()
config = model.config
session = memory_session()
memo = st.session_state.setdefault("explore_memo", RunMemo())  # what the last run's figures derived (Reset drops it)


def state() -> ExploreState:
    """This page's state now (widgets change it between the page's steps: read it where it is needed)."""
    return ExploreState.load(st.session_state)


def change(transition, *args) -> ExploreState:
    """Apply one of ExploreState's transitions to this session's state (callbacks and the page's steps)."""
    return explore_state.update(st.session_state, transition, *args)


arrived, notices = link.arriving_view(config)
if arrived is None:
    change(ExploreState.fit, config)
else:
    change(ExploreState.arrive, arrived)

st.caption("Nested Learning Explorer")
st.title("Explore memory dynamics")
link.show_notices(notices)

DEMOS = (("phrase", "A phrase read 8 times", "Does each copy get cheaper?"),
         ("facts", "Key-value facts", "Are the facts recalled when asked?"),
         ("distractor", "A long text", "What does the memory keep over 500 bytes?"))


def press_run():
    """Run's click: the memory it was pressed on, so a Reset after it wins (session.run's ``asked_at``); the
    input folds away, so the run's figures come first (1280 x 720: the timelines in view)."""
    change(ExploreState.press_run, session.version)


if state().shows_start(session.runs):
    with st.container(border=True):
        st.markdown("**Test-time learning**: this model has a memory whose weights change *while it reads*. Each "
                    "token is written into a matrix by the delta rule, and later tokens read from it. Pick a demo "
                    "and watch the memory learn, token by token; the Learn page explains each part.")
        for column, (preset, label, question) in zip(st.columns(len(DEMOS)), DEMOS):
            column.button(label, key=f"demo_{preset}", on_click=change, args=(ExploreState.start_demo, preset),
                          help=question, width="stretch")


# ---- input ------------------------------------------------------------------------------------
def input_text() -> tuple[str, str]:
    """The text to run and where it came from."""
    if state().source is None:
        st.session_state[KEYS["source"]] = "Preset"
    source = st.segmented_control("Input", ["Type", "Preset", "Upload"], key=KEYS["source"], persist_state="session")
    if source == "Type":
        text = st.text_area("Text", "the cat sat on the mat. the cat sat on the mat.", key=KEYS["text"],
                            height=140, persist_state="session")
        if text and encode_text(text) is None:
            st.caption(f"Links to this view do not hold this text: it is too long for a link (links hold up to "
                       f"about {MAX_LINK_TEXT} characters once compressed).")
        return text, "the typed text"
    if source == "Upload":
        upload = st.file_uploader("A .txt file (UTF-8)", type=["txt"], key="explore_upload")
        if upload is None:
            return "", "no file yet"
        st.caption("Links to this view do not hold an uploaded file's text.")
        text, problems = decode_upload(upload.getvalue())
        for problem in problems:
            st.warning(problem)
        st.code(text[:3000] + (" ..." if len(text) > 3000 else ""), language=None, wrap_lines=True, height=160)
        return text, f"the file {escape_markdown(upload.name)}"
    key = st.selectbox("Preset", list(TEXT_PRESETS), key=KEYS["preset"], persist_state="session",
                       format_func=lambda k: TEXT_PRESETS[k].describe())
    preset = TEXT_PRESETS[key or "phrase"]
    st.code(preset.text, language=None, wrap_lines=True, height=120)
    return preset.text, f"the preset '{preset.title}'"


# Open until the first Run, which folds it (the browser keeps it open once the user opens it again).
with st.expander("Input and switches", expanded=not state().input_folded, icon=":material/edit_note:"):
    text, origin = input_text()
    off = ablation_picker(config, KEYS["off"])
n_tokens = len(ByteTokenizer().encode(text))
left, middle, right = st.columns([1, 1, 3], vertical_alignment="center")
blank = not text.strip()  # nothing to read (only whitespace): Run waits for text
run_clicked = left.button("Run", type="primary", key="run", width="stretch", disabled=blank, on_click=press_run)
with middle:
    reset_button("reset_memory_main")
switched = f" Switched off: {', '.join(map(switch_label, off))}." if off else ""
right.caption("Nothing to read yet: type or choose some text." if blank else
              f"{n_tokens} tokens (UTF-8 bytes) from {origin}; one run takes at most {MAX_RUN_TOKENS}. "
              f"A run continues from the memory of the runs before it, until Reset.{switched}")
if n_tokens > (room := session.room()) > 0:
    st.button(f"Keep the first {room} tokens", key="keep_first", on_click=change,
              args=(ExploreState.keep_first, first_tokens(text, room)), help="Cut the input to what the next run can read (at a whole character).")


def timeline_figure(recording, all_heads: bool):
    """The run's timelines, built once per run and setting (a rerun reuses them, and Streamlit then sends an
    unchanged figure by reference only)."""
    return memo.get(f"timelines_{'all' if all_heads else 'mean'}", recording, None, lambda: timelines.timeline_figure(
        recording, recording.cms_events(), run_repeats(recording), all_heads))


def run_repeats(recording) -> list:
    """The run's repeated spans, found once per run (the timelines' bands and the repeat table)."""
    return memo.get("repeats", recording, None, lambda: repeats.find_repeats(recording.tokens.tolist()))


def prepare_figures(recording) -> None:
    """What the run's figures need, derived once: the CMS events, the timelines, the player's payload and, when
    its panel is open, the CMS replay of the shown layer (later reruns reuse them)."""
    now = state()
    layer, matrix = int(now.layer or 0), now.matrix or "memory"
    timeline_figure(recording, bool(now.all_heads))
    if layer in recording.memory_layers and player.has_factors(recording, layer, matrix):
        prepare_payload(memo, recording, layer, int(now.head or 0), run_repeats(recording), matrix)
    if layer in recording.cms_layers and st.session_state.get("explore_cms"):
        recording.cms_replay(layer)


def do_run(asked_at: int | None):
    progress = st.empty()  # the progress line goes once the run is read: the run time is in the metrics
    status = progress.status(f"Reading {n_tokens} tokens...", expanded=False)
    try:
        with admitted():  # the figures' data too: a class's drawing queues with its runs
            result = session.run(model, text, Ablation.from_names(off), deadline_s=run_deadline(),
                                 asked_at=asked_at, still_wanted=page_still_open())
            prepare_figures(result.recording)
    except RunRefused as e:
        status.update(label="Run refused", state="error")
        st.error(str(e), icon=":material/block:")
        return
    progress.empty()
    change(ExploreState.run_read, result.recording.n_tokens)


trigger = state()  # Run's click (its callback noted the memory it was pressed on), a demo or a link
change(ExploreState.trigger_taken)
if trigger.should_run(run_clicked, session.runs):
    do_run(trigger.run_asked_at if run_clicked else None)  # a link's or a demo's run has no click to be late for


# ---- results ------------------------------------------------------------------------------------
def show_run(result):
    recording = result.recording
    if (partial := result.partial_notice(run_deadline())) is not None:
        st.warning(partial, icon=":material/timer:")
    stats = recording.summary()
    no_memory = math.isnan(stats["mean_surprise"])
    surprise = ("Mean surprise", "n/a" if no_memory else f"{stats['mean_surprise']:.3f}",
                "No test-time memory in this run (switched off or not in this model)." if no_memory else None)
    if classroom.in_classroom():  # three numbers a projector shows whole, above the figure
        metrics = [("Tokens", recording.n_tokens, None), ("Mean loss (nats)", f"{stats['mean_loss']:.3f}", None), surprise]
    else:
        metrics = [("Tokens in this run", recording.n_tokens, None),
                   ("Stream positions", f"{recording.start_position}-{recording.start_position + recording.n_tokens - 1}", None),
                   ("Mean loss (nats)", f"{stats['mean_loss']:.3f}", None), ("Bits per byte", f"{stats['bits_per_byte']:.2f}", None),
                   surprise, ("Run time", f"{result.seconds:.2f} s", None)]
    for column, (label, value, help_text) in zip(st.columns(len(metrics)), metrics):
        column.metric(label, value, help=help_text)
    if recording.ablation.names_off():
        st.caption("Switched off in this run: " + ", ".join(map(switch_label, recording.ablation.names_off())))
    classroom.figure_picker()
    if classroom.figure_shown("Timelines"):
        classroom.anchor("Timelines")
        timelines_section(recording)
    if classroom.figure_shown("Verdict"):
        classroom.anchor("Verdict")
        explore_tools.verdict_panel(model, choice, result)
    if not classroom.in_classroom():
        explore_tools.overlay_panel(session)
        downloads(recording)
    for name in ("Memory M_t", "Coloured text"):  # the player's own figures; the panels below anchor themselves
        classroom.anchor(name)  # at most one is shown
    st.subheader("Inside the memory at one token")
    c1, c2, c3, _ = st.columns([1, 1, 1, 1])
    layer = c1.selectbox("Layer", range(config.n_layers), key=KEYS["layer"], persist_state="session")
    head = c2.selectbox("Head", range(config.n_memory_heads), key=KEYS["head"], persist_state="session")
    matrix = "memory"
    if config.memory and config.memory_depth > 1:  # the 2-layer memory: two fast matrices to look into
        st.session_state.setdefault(KEYS["matrix"], "memory")  # not index=: a link may have set it
        matrix = c3.selectbox("Matrix", tuple(MATRIX_CHOICES), format_func=MATRIX_CHOICES.get, key=KEYS["matrix"],
                              persist_state="session", help="The 2-layer memory M(x) = x + W1 silu(W2 x): W2 maps "
                              "the key to hidden units, W1 the hidden units to the value. Both are written at every token.")
    # The player draws the coloured text; without a player (no memory in this layer) the server does.
    server_text = classroom.figure_shown("Coloured text") and not has_player(recording, layer, matrix)
    if server_text:
        scrub_to_clicked_character(recording, layer)  # before the scrubber, so it starts at the clicked token
    # Scrubbing and Play run in the browser; a settled token reruns only this fragment.
    st.fragment(scrubber)(recording, layer, head, matrix)
    if server_text:
        coloured_text(recording, layer)


def has_player(recording, layer: int, matrix: str = "memory") -> bool:
    """Whether the browser's player can replay this layer's memory (a one-token run has nothing to scrub)."""
    return layer in recording.memory_layers and player.has_factors(recording, layer, matrix) and recording.n_tokens > 1


def timelines_section(recording):
    # The figure was built with the run (prepare_figures): a rerun sends it again by reference only.
    title, toggle = st.columns([3, 1], vertical_alignment="bottom")
    title.subheader("Timelines")
    all_heads = toggle.toggle("All heads", key=KEYS["all_heads"], persist_state="session",
                              help="One row per layer and head; off: one row per layer, the mean over its heads.")
    scrub_to_clicked_timeline(recording)
    found = run_repeats(recording)
    st.plotly_chart(timeline_figure(recording, all_heads), config=PLOT_CONFIG, key="timeline",
                    on_select="rerun", selection_mode=("points", "box"))
    st.caption("Click any panel (a heatmap column too) to scrub to that token; drag to zoom in, double-click to zoom "
               "out (the toolbar's box tool selects a span: the scrubber goes to its start). The player below marks "
               "the scrubbed token on its loss strip.")
    if found:
        st.caption(f"Green bands: {len(found)} span{'s' if len(found) > 1 else ''} of whole words, {repeats.MIN_REPEAT}+ bytes, this run "
                   "read before (grey: where it read them first). Is the repeat cheaper than the first reading?")
        table = repeats.repeat_table(recording, found)
        change(ExploreState.click_row, "repeats", selected_rows("repeat_table"), [r.start for r in found[:len(table)]])
        st.dataframe(table.style.format(
            {c: "{:.3f}" for c in ("loss first", "loss repeat", "surprise first", "surprise repeat")}, na_rep="n/a"),
            hide_index=True, key="repeat_table", on_select="rerun", selection_mode="single-row")
        st.caption("Pick a row to scrub to the start of that repeat.")


def downloads(recording):
    left, right = st.columns(2)
    left.download_button("Download recording (.safetensors)", lambda: models.recording_bytes(recording),
                         file_name="recording.safetensors", mime="application/octet-stream", key="dl_recording",
                         on_click="ignore", width="stretch")
    right.download_button("Download per-token CSV", lambda: models.recording_csv(recording), file_name="recording.csv",
                          mime="text/csv", key="dl_csv", on_click="ignore", width="stretch")


def scrub_to_clicked_timeline(recording) -> None:
    clicked = timelines.clicked_positions(st.session_state.get("timeline"))
    change(ExploreState.click_timeline, clicked, recording.start_position, recording.n_tokens)


def text_spans(recording, layer: int) -> tuple[list, str]:
    """(the run's characters with the layer's surprise, or loss without a memory; the value's name). They
    depend on the run and layer, not the token: kept for the last (run, layer), so a scrub reuses them."""
    def build():
        if layer in recording.memory_layers:
            values, name = timelines.stream_row(recording, "surprise", layer), "surprise"
        else:
            values, name = recording.stream("loss").double().numpy(), "loss"
        return byte_spans(recording.tokens.tolist(), values), name
    return memo.get("text_spans", recording, layer, build)


def scrub_to_clicked_character(recording, layer: int) -> None:
    token = text_map.clicked_token(st.session_state.get("text_map"), text_spans(recording, layer)[0])
    change(ExploreState.click_text, recording.start_position, token)


def settle_at(token: int) -> None:
    """The browser's player settled on ``token``: the server-drawn panels follow."""
    change(ExploreState.settle, token)


def scrubber(recording, layer: int, head: int, matrix: str = "memory"):
    """The player (in the browser) and the panels the server draws at its settled token; a settled token or a
    setting here reruns only this function (a fragment; see show_run). ``matrix``: the 2-layer memory's W1
    ("memory") or W2 ("hidden_memory")."""
    t = scrubbed_token(recording)
    t = player_or_slider(recording, layer, head, t, matrix)
    memory_panels(recording, layer, head, t, matrix)
    window_panel(model, session.last, t)
    if not classroom.in_classroom():
        reproduce_panel(recording, layer, head, t, matrix)
    link.write_view(state().view(t))


def scrubbed_token(recording) -> int:
    """The token the panels show: the scrubbed one, else the run's last (a link's token past the end is
    clamped, with a notice)."""
    t, notice = state().scrub_position(recording.n_tokens)
    if notice:
        st.warning(notice, icon=":material/link:")
    change(ExploreState.settle, t)
    return t


def player_or_slider(recording, layer: int, head: int, t: int, matrix: str = "memory") -> int:
    """The browser's player where it can replay the layer's memory, else the server's slider; the token shown."""
    if has_player(recording, layer, matrix):
        block = player.key_block(recording.matrix_factors(layer, matrix)["keys"].shape[-1])
        pooled = f"key dimensions averaged in blocks of {block} to fit the panel; " if block > 1 else ""
        st.caption("Drag the slider, press Play or click the loss strip: the heatmaps are redrawn in your browser "
                   f"({pooled}full resolution below). The panels under the player follow when it stops.")
        memory_player(memo, recording, layer, head, t, settle_at, run_repeats(recording),
                      panels=classroom.figure_shown("Memory M_t"), text=classroom.figure_shown("Coloured text"),
                      matrix=matrix)
        return t
    # No memory to replay in the browser (or one token: nothing to scrub): the server's slider.
    t = token_slider(recording.n_tokens, KEYS["token"], help="Scrub through the run: the panels show the state after this token.")
    label = ByteTokenizer.token_label(int(recording.tokens[t]))
    st.caption(f"Token {t} (stream position {recording.start_position + t}): byte '{escape_markdown(label)}'. "
               + timelines.token_summary(recording, t))
    return t


def reproduce_panel(recording, layer: int, head: int, t: int, matrix: str = "memory"):
    with lazy_section("Reproduce this view in Python", "explore_reproduce") as open_:
        if open_:
            code = snippet.reproduce(choice, state().linked_text or recording.text or "", list(recording.ablation.names_off()),
                                     layer, head, t, recording.start_position, matrix)
            st.code(code, language="python")


def coloured_text(recording, layer: int):
    """The run's text coloured by the layer's surprise, or its loss without a memory; a click scrubs (drawn
    once per run and layer). Where the player is shown, it draws the text itself."""
    spans, name = text_spans(recording, layer)
    st.markdown(f"**Text coloured by {name}** (layer {layer}, mean over heads): hover or tap a character for its "
                "value, click one to scrub to it.")
    figure = memo.get("text_figure", recording, layer, lambda: text_map.text_figure(spans, name, recording.start_position))
    st.plotly_chart(figure, config=PLOT_CONFIG, key="text_map", on_select="rerun", selection_mode="points")


if session.last is None:
    st.info("Pick an input and press **Run**. Each run continues from the memory of the previous ones until "
            "you press **Reset memory** in the sidebar.")
    link.write_view(state().view(state().pending_token))
else:
    show_run(session.last)
    classroom.anchor("Continue a prompt")
    if classroom.figure_shown("Continue a prompt"):
        explore_tools.generation_panel(model, choice, session)
