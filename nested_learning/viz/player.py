"""The memory player's payload: what a browser needs to redraw M_t and its write at any token of a run,
sent once per run, layer and head, so that scrubbing and Play never wait for the server.

M_t = a_t M_{t-1} + u_t k_t^T is linear in M, so the key dimensions can be pooled before the scan
(the 2-layer memory's W1 and W2 follow it too, each around its anchor A: W_t = a_t W_{t-1} + (1 - a_t) A + u_t k_t^T):
with P the [dk, c] block-mean matrix, M_t P = a_t (M_{t-1} P) + u_t (P^T k_t)^T. The browser starts from
the pooled initial memory and applies the pooled rank-one writes: every pooled M_t exactly, at display
resolution (c columns, at most POOLED_COLUMNS), from [T, d + c] numbers instead of [T, d, dk]. The run's
text comes along as characters with the layer's surprise (the coloured text), the model's top next-byte
guesses per token, and a narrated tour of the run (viz/tour.py).

Format (little-endian): b"NLEP", uint32 header length, the header as UTF-8 JSON padded with spaces to a
multiple of 4, then the float32 arrays the header lists in ``arrays`` ([name, shape]), in that order.
No Streamlit here: app_pages/memory_player.py mounts it.
"""
from __future__ import annotations

import json
import struct

import numpy as np
import plotly.colors
import torch

from ..recording import Recording
from ..tokenizer import ByteTokenizer
from .repeats import find_repeats
from .safe_text import byte_spans
from .tour import tour_stops

MAGIC = b"NLEP"
POOLED_COLUMNS = 128  # a half-width panel is about 600 px wide: more columns than that are not seen
COLORSCALE = "RdBu_r"  # the Plotly heatmaps' diverging scale (heatmaps.DIVERGING): red positive, blue negative


def key_block(key_width: int, columns: int = POOLED_COLUMNS) -> int:
    """Key dimensions averaged into one displayed column (1 when the key fits)."""
    return max(1, -(-key_width // columns))


def pooling_matrix(key_width: int, block: int) -> torch.Tensor:
    """[dk, c] float64: column j averages key dimensions j*block .. (j+1)*block - 1 (a short last block
    averages what it has), so a block of equal values keeps its value."""
    columns = -(-key_width // block)
    owner = torch.arange(key_width) // block
    pool = torch.zeros(key_width, columns, dtype=torch.float64)
    pool[torch.arange(key_width), owner] = 1.0
    return pool / pool.sum(0, keepdim=True)


def pooled(matrix: torch.Tensor, block: int) -> torch.Tensor:
    """A memory matrix [d, dk] (or a batch [..., dk]) at display resolution: block means along the keys."""
    return matrix.double() @ pooling_matrix(matrix.shape[-1], block)


# How the player names a matrix: (its symbol, its rows, its columns). The 2-layer memory (memory_depth 2)
# has two: W1 maps the hidden units to values, W2 the keys to the hidden units.
MATRIX_NAMES = {("memory", 1): ("M", "value dim", "key dim"), ("memory", 2): ("W1", "value dim", "hidden unit"),
                ("hidden_memory", 2): ("W2", "hidden unit", "key dim")}


def matrix_names(recording: Recording, layer: int, matrix: str = "memory") -> tuple[str, str, str]:
    """(symbol, row name, column name) of one of the layer's matrices."""
    return MATRIX_NAMES[matrix, len(recording.memory_matrices(layer))]


def has_factors(recording: Recording, layer: int, matrix: str = "memory") -> bool:
    """Whether the layer's memory (``matrix``: one of ``Recording.memory_matrices``) can be replayed from its
    recorded write factors."""
    try:
        factors = recording.matrix_factors(layer, matrix)
    except KeyError:
        return False
    return all(name in factors for name in ("keys", "writes", "retention", "initial.memory"))


def payload(recording: Recording, layer: int, head: int, run_id: str, columns: int = POOLED_COLUMNS,
            found: list | None = None, matrix: str = "memory") -> bytes:
    """The player's bytes for one head of one memory layer (see the module docstring); ``found``: the run's
    repeats when the caller has them (else found here), for the tour. ``matrix``: which of the layer's
    matrices (the 2-layer memory's W1 "memory" or W2 "hidden_memory": each W_t - A follows the same rule,
    A its anchor, so the browser adds (1 - a_t) A)."""
    if layer not in recording.memory_layers or not has_factors(recording, layer, matrix):
        raise KeyError(f"layer {layer} has no recorded memory factors")
    factors = recording.matrix_factors(layer, matrix)
    pick = lambda name: factors[name][:, head]
    keys = pick("keys")  # [T, dk]
    block = key_block(keys.shape[-1], columns)
    pool = pooling_matrix(keys.shape[-1], block)
    arrays = {"initial": factors["initial.memory"][head].double() @ pool,
              "writes": pick("writes"), "keys": keys.double() @ pool, "retention": pick("retention"),
              "loss": recording.stream("loss")}
    momentum = "momentum_gate" in factors
    if momentum:
        arrays["initial_momentum"] = factors["initial.momentum"][head].double() @ pool
        arrays["momentum_gate"] = pick("momentum_gate")
    if "anchor" in factors:
        arrays["anchor"] = factors["anchor"][head].double() @ pool
    symbol, row_name, column_name = matrix_names(recording, layer, matrix)
    # Per memory layer, the mean over its heads of surprise, learning rate and retention: the caption's numbers.
    arrays["summary"] = torch.stack([torch.stack([recording.memory_stream(i, name).double().mean(1)
                                                  for name in ("surprise", "learning_rate", "retention")])
                                     for i in recording.memory_layers])
    arrays["topk_ids"], arrays["topk_probs"] = recording.stream("topk.ids"), recording.stream("topk.probs")
    # The text as characters (UTF-8 grouped, escapes for control bytes), coloured by this layer's surprise.
    spans = byte_spans(recording.tokens.tolist(), arrays["summary"][recording.memory_layers.index(layer), 0].numpy())
    arrays["span_values"] = torch.tensor([span.value for span in spans], dtype=torch.float64)
    header = {"version": 1, "run": run_id, "layer": layer, "head": head, "n_tokens": recording.n_tokens,
              "start_position": recording.start_position, "rows": int(arrays["initial"].shape[0]),
              "columns": int(arrays["initial"].shape[1]), "key_width": int(keys.shape[-1]), "block": block,
              "momentum": momentum, "anchor": "anchor" in arrays, "matrix": matrix, "symbol": symbol,
              "row_name": row_name, "column_name": column_name, "memory_layers": recording.memory_layers,
              "tokens": recording.tokens.tolist(), "labels": [ByteTokenizer.token_label(i) for i in range(256)],
              "spans": [[span.label, span.first, span.last, 2 if span.newline else int(span.control)] for span in spans],
              "tour": tour_stops(recording, find_repeats(recording.tokens.tolist()) if found is None else found),
              "colorscale": plotly.colors.get_colorscale(COLORSCALE),
              "arrays": [[name, list(a.shape)] for name, a in arrays.items()]}
    head_bytes = json.dumps(header, separators=(",", ":")).encode()
    head_bytes += b" " * (-(len(head_bytes) + 8) % 4)  # JSON ignores trailing spaces; float32s start aligned
    body = b"".join(a.detach().to(torch.float32).contiguous().numpy().astype("<f4").tobytes() for a in arrays.values())
    return MAGIC + struct.pack("<I", len(head_bytes)) + head_bytes + body


def read_payload(data: bytes) -> tuple[dict, dict[str, np.ndarray]]:
    """(header, arrays) of a payload: what the browser reads, for tests and tools."""
    if data[:4] != MAGIC:
        raise ValueError("not a memory player payload")
    (length,) = struct.unpack("<I", data[4:8])
    header = json.loads(data[8:8 + length])
    arrays, offset = {}, 8 + length
    for name, shape in header["arrays"]:
        count = int(np.prod(shape)) if shape else 1
        arrays[name] = np.frombuffer(data, "<f4", count, offset).reshape(shape)
        offset += 4 * count
    return header, arrays


def replay_pooled(header: dict, arrays: dict[str, np.ndarray], t: int) -> np.ndarray:
    """Pooled M_t (t = -1: before the first token) by the browser's recurrence, in float64: the reference
    the player's drawing is tested against."""
    memory = arrays["initial"].astype(np.float64)
    momentum = arrays["initial_momentum"].astype(np.float64) if header["momentum"] else None
    anchor = arrays["anchor"].astype(np.float64) if header.get("anchor") else 0.0
    for s in range(t + 1):
        write = np.outer(arrays["writes"][s], arrays["keys"][s])
        if momentum is not None:
            momentum = arrays["momentum_gate"][s] * momentum + write
            write = momentum
        memory = arrays["retention"][s] * memory + (1 - arrays["retention"][s]) * anchor + write
    return memory
