"""The names of a recording's tensors: one table, from which everything else is derived.

A recording is a flat dict of tensors whose keys are also its file's keys (safetensors), so the names
are its contract. ``STREAMS`` lists every name a recording may hold, with its shape as symbols of the
config (``SYMBOLS``), its dtype, when it is kept and what it means. The file reader checks files
against it (``files.py``), the docs' table is rendered from it (docs/recording.md, rewritten by
``write_table``) and the tests check the recorder's output against it. Library code asks the functions
below (or ``Recording.memory_stream``) instead of writing the strings.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from ..config import HopeConfig

# The sizes a shape is written in; None: any length (the file says).
SYMBOLS = {
    "T": ("tokens recorded", lambda c: None),
    "k": ("top-k predictions kept (`top_k`)", lambda c: None),
    "H": ("memory heads (`n_memory_heads`)", lambda c: c.n_memory_heads),
    "d": ("memory head width, the values' (`memory_head_dim`)", lambda c: c.memory_head_dim),
    "dk": ("memory key width, d x `key_expansion` (`memory_key_dim`)", lambda c: c.memory_key_dim),
    "m": ("the columns of M: dk, or with `memory_depth` 2 (W1, values x hidden) the hidden width d",
          lambda c: c.memory_head_dim if c.memory_depth > 1 else c.memory_key_dim),
    "D": ("model width (`d_model`)", lambda c: c.d_model),
    "h": ("CMS hidden width (`cms_hidden`)", lambda c: c.cms_hidden),
    "n": ("attention heads (`n_heads`)", lambda c: c.n_heads),
    "S": ("keys attended: persistent tokens and the window's", lambda c: None),
    "U": ("updates a CMS level applied during the recording", lambda c: None),
}
# When a stream is there; the file reader requires each layer's group once any of it is there.
KEPT = {
    "always": "always",
    "memory": "every memory layer",
    "keys": "every memory layer: one of these two (below)",
    "write": "every memory layer: one of these two (below)",
    "values": "momentum configs and `memory_depth` 2 (older files: any memory layer, or none)",
    "momentum": "memory layers of momentum configs (Titans)",
    "deep": "memory layers with `memory_depth` 2 (the 2-layer MLP memory)",
    "step": "memory layers with `memory_depth` 2 or damped momentum (`momentum_dampening`)",
    "deep_momentum": "memory layers with `memory_depth` 2 and momentum",
    "cms": "every CMS layer",
    "lm": "every CMS layer of `cms_objective` 'lm' models",
    "attention": "with `attention=True`",
    "full": "with `full_states=True`",
}


@dataclass(frozen=True)
class Stream:
    name: str  # {i}: a layer, {j}: a CMS level, {param}: a CMS parameter's name
    shape: tuple[str, ...] | None  # symbols of SYMBOLS; None: the CMS parameter's own shape
    dtype: str  # as recorded: int64, float32 or float16 (a file may hold any float type for a float)
    kept: str  # a key of KEPT
    meaning: str

    def shape_for(self, config: HopeConfig, T: int, param_shape: tuple[int, ...] | None = None) -> tuple[int | None, ...]:
        """The shape for this config and T tokens (None: any length); ``param_shape`` for ``cms.params``."""
        if self.shape is None:
            return tuple(param_shape)
        return tuple(T if s == "T" else SYMBOLS[s][1](config) for s in self.shape)

    @property
    def pattern(self) -> str:
        """A regex of the names; indices without leading zeros (one name per layer or level)."""
        return (re.escape(self.name).replace(r"\{i\}", r"(?P<layer>0|[1-9]\d{0,2})")
                .replace(r"\{j\}", r"(?P<level>0|[1-9]\d?)").replace(r"\{param\}", r"(?P<param>.+)"))


def _memory(name, shape, meaning, kept="memory", dtype="float32"):
    return Stream(f"layers.{{i}}.memory.{name}", shape, dtype, kept, meaning)


def _cms(name, shape, meaning):
    return Stream(f"layers.{{i}}.cms.{name}", shape, "float32", "cms", meaning)


STREAMS = (
    Stream("tokens", ("T",), "int64", "always", "byte ids"),
    Stream("loss", ("T",), "float32", "always", "next-token loss in nats (NaN for the last token without `next_token`)"),
    Stream("topk.ids", ("T", "k"), "int64", "always", "top-k next-byte predictions"),
    Stream("topk.probs", ("T", "k"), "float32", "always", "their probabilities"),
    _memory("surprise", ("T", "H"), "`‖v_t − M_{t−1} k_t‖`, exact per token"),
    _memory("gate_surprise", ("T", "H"), "the relative surprise the learning-rate gate saw (against the chunk-start memory)"),
    _memory("learning_rate", ("T", "H"), "learning rate applied (0 when test-time updates are off)"),
    _memory("retention", ("T", "H"), "retention applied (1 = keep everything)"),
    _memory("write_norm", ("T", "H"), "`‖M_t − M_{t−1}‖_F`"),
    _memory("memory_norm", ("T", "H"), "`‖M_t‖_F`"),
    _memory("momentum_gate", ("T", "H"), "momentum beta", kept="momentum"),
    _memory("unit_keys", ("T", "H", "d"), "the key before the key feature map: `k_t = phi(unit key)` (`ops.key_feature_map`, "
            "DPFP then l2norm), rebuilt on read", kept="keys"),
    _memory("keys", ("T", "H", "dk"), "the keys `k_t` themselves, stored in place of the unit keys", kept="keys"),
    _memory("errors", ("T", "H", "d"), "the error the write used, `e_t = v_t − M_{t−1} k_t` (momentum: against the "
            "chunk-start memory; updates off: never written); the writes `u_t = lr_t e_t` are rebuilt on read", kept="write"),
    _memory("writes", ("T", "H", "d"), "the writes `u_t` (`M_t = a_t M_{t−1} + u_t k_tᵀ`), stored in place of the errors "
            "by files from before", kept="write"),
    _memory("values", ("T", "H", "d"), "the values `v_t`; without momentum or depth 2 rebuilt on read as "
            "`M_{t−1} k_t + e_t` (`M_{t−1}` replayed)", kept="values"),
    _memory("initial.memory", ("H", "d", "m"), "`M` before the first token (values x keys; depth 2: W1, values x hidden)"),
    _memory("initial.momentum", ("H", "d", "m"), "the momentum before the first token (depth 2: W1's)", kept="momentum"),
    # memory_depth 2, M(x) = r(x) + W1 silu(W2 x): W1 - A1 and W2 - A2 are gated-delta memories (docs/deep-memory.md)
    _memory("write_rate", ("T", "H"), "the step each token took where it is not the learning rate: damped momentum "
            "`lr_t (1 − beta_t)`, what enters the momentum; depth 2 `rho_t` (learning rate / chunk size / the normaliser, "
            "times `1 − beta_t` with damped momentum); the writes are then `rate_t e_t`", kept="step"),
    _memory("hidden", ("T", "H", "d"), "depth 2: `a_t = silu(W2 k_t)` at the chunk start's weights, the key of "
            "W1's write (`W1_t − A1 = a_t (W1_{t−1} − A1) + rho_t e_t a_tᵀ`)", kept="deep"),
    _memory("hidden_errors", ("T", "H", "d"), "depth 2: `d_t = silu′(W2 k_t) ⊙ W1ᵀ e_t`, W2's write direction "
            "(`W2_t − A2 = a_t (W2_{t−1} − A2) + rho_t d_t k_tᵀ`); `hidden_writes` `rho_t d_t` rebuilt on read", kept="deep"),
    _memory("hidden_memory_norm", ("T", "H"), "depth 2: `‖W2_t‖_F` (`memory_norm` and `write_norm` are W1's)", kept="deep"),
    _memory("hidden_write_norm", ("T", "H"), "depth 2: `‖W2_t − W2_{t−1}‖_F`", kept="deep"),
    _memory("initial.hidden_memory", ("H", "d", "dk"), "depth 2: W2 before the first token (hidden x keys)", kept="deep"),
    _memory("anchor.memory", ("H", "d", "d"), "depth 2: A1, the learned initial W1 that retention pulls toward", kept="deep"),
    _memory("anchor.hidden_memory", ("H", "d", "dk"), "depth 2: A2, the learned initial W2", kept="deep"),
    _memory("initial.hidden_momentum", ("H", "d", "dk"), "depth 2 with momentum: W2's momentum before the first token",
            kept="deep_momentum"),
    Stream("full.layers.{i}.memory.memory", ("T", "H", "d", "m"), "float16", "full", "every `M_t` (depth 2: W1)"),
    Stream("full.layers.{i}.memory.hidden_memory", ("T", "H", "d", "dk"), "float16", "full", "depth 2: every W2"),
    _cms("input", ("T", "D"), "the chain's input: replays every level exactly"),
    _cms("initial.{j}.memory", ("D", "h"), "level j's fast weights before the first token"),
    _cms("initial.{j}.pending", ("D", "h"), "level j's update pending inside its block"),
    _cms("initial.{j}.previous_input", ("D",), "level j's input at the token before the first"),
    _cms("params.{param}", None, "the layer's CMS parameters (`shapes.cms_parameter_shapes`)"),
    # cms_objective "lm": a level learns from the model's loss, which no replay of the chain recomputes
    Stream("layers.{i}.cms.updates.{j}.tokens", ("U",), "int64", "lm", "lm levels: the token whose block end "
           "applied each update (`W <- retention W + pending`), increasing"),
    Stream("layers.{i}.cms.updates.{j}.memory", ("U", "D", "h"), "float32", "lm", "lm levels: the level's fast "
           "weights after each update"),
    Stream("layers.{i}.attention.weights", ("n", "T", "S"), "float32", "attention", "attention weights"),
)


def per_token_memory_streams() -> tuple[str, ...]:
    """The per-token memory streams [T, H] every memory layer holds, in the table's order."""
    return tuple(s.name.removeprefix("layers.{i}.memory.") for s in STREAMS
                 if s.name.startswith("layers.{i}.memory.") and s.shape == ("T", "H") and s.kept == "memory")


# Per-token memory streams [T, H], each one number per token and head.
MEMORY_STREAMS = per_token_memory_streams()
# The per-token streams [T, H] some memory layers hold besides those: momentum's gate, the writes' own rate
# (depth 2, damped momentum) and memory_depth 2's.
OPTIONAL_MEMORY_STREAMS = tuple(s.name.removeprefix("layers.{i}.memory.") for s in STREAMS
                                if s.name.startswith("layers.{i}.memory.") and s.shape == ("T", "H")
                                and s.kept in ("momentum", "step", "deep"))


_PATTERNS = [(re.compile(stream.pattern), stream) for stream in STREAMS]


def find(name: str) -> tuple[Stream, dict[str, str]] | None:
    """The table's row for a tensor name, with the indices it names; None for a name not in the table."""
    for pattern, stream in _PATTERNS:
        match = pattern.fullmatch(name)
        if match is not None:
            return stream, {k: v for k, v in match.groupdict().items() if v is not None}
    return None


def memory(layer: int, name: str) -> str:
    """``layers.{layer}.memory.{name}``: a memory stream, factor or ``initial.memory``/``initial.momentum``."""
    return f"layers.{layer}.memory.{name}"


# Streams a reader rebuilds when the file holds what they are rebuilt from instead: keys = phi(unit keys),
# writes = lr * errors (depth 2: write_rate * errors), values = M_{t-1} k + errors, and (depth 2 only)
# hidden_writes = write_rate * hidden_errors.
REBUILT_FROM = {"keys": "unit_keys", "writes": "errors", "values": "errors", "hidden_writes": "hidden_errors"}


def rebuilt_from(name: str) -> str | None:
    """``layers.{i}.memory.unit_keys`` for ``layers.{i}.memory.keys``, ``...errors`` for ``...writes`` and
    ``...values``, ``...hidden_errors`` for ``...hidden_writes`` (what a reader rebuilds them from), else None."""
    match = re.fullmatch(r"(layers\.\d+\.memory\.)(keys|writes|values|hidden_writes)", name)
    return match[1] + REBUILT_FROM[match[2]] if match else None


def cms(layer: int, name: str) -> str:
    """``layers.{layer}.cms.{name}``: ``input``, ``initial.{level}.{memory,pending,previous_input}`` or
    ``params.{parameter}``."""
    return f"layers.{layer}.cms.{name}"


def attention_weights(layer: int) -> str:
    return f"layers.{layer}.attention.weights"


def full_memory(layer: int, matrix: str = "memory") -> str:
    """Every M_t of a layer [T, H, d, dk] (float16, values x keys), when recorded with ``full_states``;
    ``matrix`` "hidden_memory": the 2-layer memory's W2 (its "memory" is W1)."""
    return "full." + memory(layer, matrix)


def markdown_table(shipped: HopeConfig | None = None) -> str:
    """The docs' stream table: every row of ``STREAMS``, its shape in symbols and for the ``shipped`` config
    (the default ``hope`` preset), then what the symbols stand for."""
    shipped = shipped or HopeConfig.preset("hope")
    size = lambda s: s if s in ("T", "k", "S", "U") else f"{SYMBOLS[s][1](shipped):,}"  # m: the shipped (linear) memory's
    lines = ["| stream | shape | shipped model | dtype | kept | meaning |", "|---|---|---|---|---|---|"]
    for s in STREAMS:
        shape = "as the parameter" if s.shape is None else f"[{', '.join(s.shape)}]"
        concrete = "as the parameter" if s.shape is None else f"[{', '.join(size(x) for x in s.shape)}]"
        lines.append(f"| `{s.name}` | {shape} | {concrete} | {s.dtype} | {KEPT[s.kept]} | {s.meaning} |")
    lines += ["", "Sizes: " + "; ".join(f"{symbol} = {text}" for symbol, (text, _) in SYMBOLS.items()) + "."]
    return "\n".join(lines)


BEGIN, END = "<!-- stream-table:begin -->", "<!-- stream-table:end -->"


def with_table(document: str) -> str:
    """``document`` with the text between its stream-table markers replaced by :func:`markdown_table`."""
    start, end = document.index(BEGIN) + len(BEGIN), document.index(END)
    return document[:start] + "\n" + markdown_table() + "\n" + document[end:]


def write_table(path: str = "docs/recording.md") -> bool:
    """Regenerate the stream table in the docs; True if the file changed. From the repository root:
    ``python -c "from nested_learning.recording.streams import write_table; write_table()"``."""
    with open(path, encoding="utf-8") as f:
        text = f.read()
    if with_table(text) == text:
        return False
    with open(path, "w", encoding="utf-8") as f:
        f.write(with_table(text))
    return True
