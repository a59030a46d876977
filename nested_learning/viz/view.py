"""The shareable view: text preset or typed text, layer, head, token and ablations as URL query parameters.

Typed text of up to one run (MAX_TEXT_BYTES) travels compressed (zlib, then URL-safe base64): at most
MAX_LINK_TEXT characters even for incompressible bytes, about 100-1,000 for prose. A longer text
cannot run and is left out of the link; the page says so.

:func:`parse_view` never raises: a value that is not understood falls back to the default and an
out-of-range value is clamped, each with a one-line notice (user values in notices are escaped for
Markdown, which Streamlit messages render).
"""
from __future__ import annotations

import base64
import binascii
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from ..ablation import Ablation
from ..config import HopeConfig
from .safe_text import escape_markdown

MAX_LINK_TEXT = 2800  # encoded characters: 2,048 incompressible bytes take about 2,760 (URLs of 8 KB are safe)
MAX_TEXT_BYTES = 2048  # a link's text decompresses to at most one run


@dataclass(frozen=True)
class View:
    preset: str | None = None
    layer: int = 0
    head: int = 0
    token: int | None = None  # None: the last token of the run
    off: tuple[str, ...] = field(default_factory=tuple)  # ablation names, Ablation.from_names order
    text: str | None = None  # typed text (instead of a preset)
    b: str | None = None  # Compare: what B runs (None: the page's default)
    # Explore's figure settings: every head on the timelines; the CMS panels as the change during the run;
    # the probe as plain cosine (not specificity)
    all_heads: bool = False
    cms_change: bool = False
    probe_cosine: bool = False
    hidden_matrix: bool = False  # the 2-layer memory's W2 (hidden x keys) in place of its W1


def encode_text(text: str) -> str | None:
    """The text as a link value, or None when it is too long for a link."""
    encoded = base64.urlsafe_b64encode(zlib.compress(text.encode("utf-8", errors="replace"), 9)).decode().rstrip("=")
    return encoded if len(encoded) <= MAX_LINK_TEXT and len(text.encode("utf-8", errors="replace")) <= MAX_TEXT_BYTES else None


def decode_text(value: str) -> str:
    """A link's text; ValueError (one line) for anything that is not a text this app encoded."""
    if len(value) > MAX_LINK_TEXT:
        raise ValueError(f"longer than {MAX_LINK_TEXT} characters")
    try:
        data = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
        inflater = zlib.decompressobj()
        raw = inflater.decompress(data, MAX_TEXT_BYTES + 1)  # bounded: a small value cannot inflate to gigabytes
    except (binascii.Error, ValueError, zlib.error):
        raise ValueError("not an encoded text") from None
    if len(raw) > MAX_TEXT_BYTES or inflater.unconsumed_tail:
        raise ValueError(f"longer than {MAX_TEXT_BYTES} bytes once decoded")
    if not inflater.eof:
        raise ValueError("not an encoded text (cut short)")
    return raw.decode("utf-8", errors="replace")


# What each switch is, for tooltips (one line each; cms.N is added per level).
GLOSSARY = {
    "attention": "causal self-attention over a short sliding window (the model's exact short-term memory)",
    "memory": "the test-time memory: a matrix per head written by the delta rule while the model reads",
    "cms": "the Continuum Memory System: a chain of MLP levels updating every 1, 2, 4 ... tokens",
    "persistent_tokens": "learned tokens every attention query can see, whatever the text (task knowledge)",
    "ffn": "the feed-forward block of each layer",
    "test_time_updates": "every write at inference: memory and CMS stay as they started",
    "momentum": "the memory's momentum (updates carry part of the previous update)",
    "retention": "forgetting: without it the memory keeps everything (retention 1)",
    "self_modification": "the memory's key/value projections learning at test time as well",
    "adaptive_lr": "the surprise-driven learning rate (off: a fixed rate)",
}


def glossary(name: str) -> str:
    if name.startswith("cms.") and name[4:].isdigit():
        return f"CMS level {name[4:]} only (level j updates every 2^j tokens in the default preset)"
    return GLOSSARY.get(name, "")


def ablation_names(config: HopeConfig) -> list[str]:
    """The switches that change something for this config (components it does not have are left out)."""
    return Ablation().applicable(config)


def fit_choices(config: HopeConfig, layer: int | None, head: int | None,
                off: tuple[str, ...] | None) -> tuple[int | None, int | None, tuple[str, ...] | None]:
    """Remembered choices made valid for ``config`` (another model may have fewer layers or switches);
    None (not chosen yet) stays None."""
    if layer is not None and layer >= config.n_layers:
        layer = config.n_layers - 1
    if head is not None and head >= config.n_memory_heads:
        head = config.n_memory_heads - 1
    if off is not None:
        valid = ablation_names(config)
        off = tuple(n for n in off if n in valid)
    return layer, head, off


def _single(value) -> str:
    if isinstance(value, (list, tuple)):
        return str(value[-1]) if value else ""
    return str(value)


def _choice(params, key: str, options: tuple[str, ...], what: str, shown: str, notices: list[str]) -> str | None:
    """One of ``options`` from the link, or None (with a notice when the value is not one of them)."""
    if key not in params:
        return None
    raw = _single(params[key]).strip()
    if raw in options:
        return raw
    notices.append(f"{key}={escape_markdown(raw)} is not {what} ({escape_markdown(shown, limit=200)}): ignored.")
    return None


def _int(params, key: str, default, low: int, high: int | None, notices: list[str]):
    if key not in params:
        return default
    raw = _single(params[key]).strip()
    try:
        value = int(raw)
    except ValueError:
        shown = "the last token" if default is None else default
        notices.append(f"{key}={escape_markdown(raw)} is not a whole number: using {shown}.")
        return default
    clamped = max(low, value if high is None else min(value, high))
    if clamped != value:
        bounds = f"{low}..{high}" if high is not None else f">= {low}"
        notices.append(f"{key}={value} is out of range ({bounds}): using {clamped}.")
    return clamped


VIEW_PARAMS = ("preset", "text", "b", "layer", "head", "token", "off", "heads", "cms", "probe", "matrix")
# Explore's figure settings: link key -> (View field, the default's value, the other's); only the other is written.
SETTINGS = {"heads": ("all_heads", "mean", "all"), "cms": ("cms_change", "weights", "change"),
            "probe": ("probe_cosine", "specific", "cosine"), "matrix": ("hidden_matrix", "w1", "w2")}
STREAMLIT_PARAMS = ("embed", "embed_options")  # Streamlit's own
MAX_NAMED = 5  # unknown keys named in the notice; the rest are counted


def parse_view(params: Mapping, config: HopeConfig, presets: tuple[str, ...],
               b_options: tuple[str, ...] = ()) -> tuple[View, list[str]]:
    """Query parameters -> (View, notices). Unknown keys are ignored with one notice naming them."""
    notices: list[str] = []
    unknown = [key for key in params if key not in VIEW_PARAMS and key not in STREAMLIT_PARAMS]
    if unknown:
        named = ", ".join(escape_markdown(key, limit=40) for key in unknown[:MAX_NAMED])
        more = f" and {len(unknown) - MAX_NAMED} more" if len(unknown) > MAX_NAMED else ""
        notices.append(f"Unknown link parameter{'s' if len(unknown) > 1 else ''} {named}{more}: ignored "
                       f"(a link takes {', '.join(VIEW_PARAMS)}).")
    preset = _choice(params, "preset", presets, "a preset", ", ".join(presets), notices)
    text = None
    if "text" in params:
        try:
            text = decode_text(_single(params["text"]).strip())
        except ValueError as e:
            notices.append(f"text= is {e}: ignored.")
        else:
            preset = None  # a link holds one input: its text wins over a preset
    b = _choice(params, "b", b_options, "a choice for B", ", ".join(b_options) or "only on Compare", notices)
    layer = _int(params, "layer", 0, 0, config.n_layers - 1, notices)
    head = _int(params, "head", 0, 0, config.n_memory_heads - 1, notices)
    token = _int(params, "token", None, 0, None, notices)
    off = []
    if "off" in params:
        valid = ablation_names(config)
        for name in _single(params["off"]).split(","):
            name = name.strip()
            if not name or name in off:
                continue
            if name in valid:
                off.append(name)
            else:
                notices.append(f"off={escape_markdown(name)} is not a component of this model: ignored.")
    settings = {field: _choice(params, key, values, "a setting", " or ".join(values), notices) == values[1]
                for key, (field, *values) in SETTINGS.items()}
    if settings["hidden_matrix"] and not (config.memory and config.memory_depth > 1):
        notices.append("matrix=w2 is the 2-layer memory's second matrix; this model's memory has one: ignored.")
        settings["hidden_matrix"] = False
    return View(preset, layer, head, token, tuple(Ablation.from_names(off).names_off()), text, b, **settings), notices


def clamp_token(view: View, n_tokens: int) -> tuple[View, str | None]:
    """Fit the view's token into a run of ``n_tokens`` (None = last token)."""
    if view.token is None or n_tokens <= 0:
        return view, None
    if view.token > n_tokens - 1:
        return replace(view, token=n_tokens - 1), \
            f"token={view.token} is past the end of the run (0..{n_tokens - 1}): using {n_tokens - 1}."
    return view, None


def view_to_params(view: View) -> dict[str, str]:
    """The canonical query parameters of a view (defaults left out, so URLs stay short)."""
    params = {}
    if view.text is not None:
        if (encoded := encode_text(view.text)) is not None:
            params["text"] = encoded
    elif view.preset:
        params["preset"] = view.preset
    if view.b:
        params["b"] = view.b
    if view.layer:
        params["layer"] = str(view.layer)
    if view.head:
        params["head"] = str(view.head)
    if view.token is not None:
        params["token"] = str(view.token)
    if view.off:
        params["off"] = ",".join(view.off)
    for key, (field, _, other) in SETTINGS.items():
        if getattr(view, field):
            params[key] = other
    return params
