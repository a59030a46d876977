"""The one finiteness guard for everything the dashboard runs (Explore, Compare, the lessons): a run
whose memory, state or output (loss, probabilities) is non-finite is refused with the first token and
layer where it went wrong; the caller keeps whatever state it had before the run.

No Streamlit here; pages show :class:`RunRefused`'s one-line message.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

from ..ablation import Ablation
from ..model import HopeTransformer
from ..recording import Recording, record, streams
from ..state import HopeState
from ..tokenizer import ByteTokenizer
from .safe_text import escape_markdown

OUTPUT_LAYER = -1  # Divergence.layer when only the output (loss, probabilities) went non-finite
TOP_K = 5  # predictions a run keeps per token (fewer when the model's vocabulary is smaller)
# A prediction is uniform when its likeliest byte is at most this much likelier than 1/vocab_size (a random-init
# model's likeliest byte is 1.25-1.7 times 1/256 on the tiny test model and the hope preset).
UNIFORM_TOLERANCE = 1e-3


class RunRefused(ValueError):
    """A run that was not made; the message is one line for the user. The caller's state is unchanged."""


@dataclass(frozen=True)
class Divergence:
    token_index: int  # in the run
    position: int  # in the stream
    layer: int  # OUTPUT_LAYER: every layer was finite, the output was not
    what: str  # the first non-finite quantity

    def message(self, label: str = "") -> str:
        where = f" (character {escape_markdown(label)})" if label else ""  # shown in a Markdown message
        layer = "" if self.layer == OUTPUT_LAYER else f", layer {self.layer}"
        return (f"The run diverged at token {self.token_index}{where}, stream position {self.position}{layer}: "
                f"{self.what} became non-finite.")


STREAMS_CHECKED = {(streams.memory, "surprise"): "the memory's surprise", (streams.memory, "memory_norm"): "the memory",
                   (streams.memory, "write_norm"): "the memory's write", (streams.cms, "input"): "the CMS input"}


def non_finite(recording: Recording, new_state: HopeState) -> tuple[int, str] | None:
    """(layer, what) of the lowest layer with a non-finite memory stream, CMS input or next state, else
    (OUTPUT_LAYER, what) when the loss or the probabilities are; None if all is finite. Which *token*
    went first cannot be read from one run: the chunk-wise kernels and attention mix a NaN into the
    other tokens of its chunk (0 * NaN = NaN), so :func:`locate_divergence` bisects."""
    for layer in range(recording.config.n_layers):
        for (kind, name), what in STREAMS_CHECKED.items():
            key = kind(layer, name)
            if key in recording.tensors and not torch.isfinite(recording.tensors[key]).all():
                return layer, what
        for name, tensor in new_state.layers[layer].tensors().items():
            if tensor.is_floating_point() and not torch.isfinite(tensor).all():
                return layer, f"state {name}"
    # The last token's loss is NaN by design (it has no next token).
    if not torch.isfinite(recording.stream("loss")[:-1]).all():
        return OUTPUT_LAYER, "the model's loss"
    if not torch.isfinite(recording.stream("topk.probs")).all():
        return OUTPUT_LAYER, "the model's probabilities"
    return None


def locate_divergence(model: HopeTransformer, tokens: torch.Tensor, state: HopeState, ablation: Ablation) -> Divergence:
    """The first token whose prefix run is non-finite (bisection over prefixes of a run known to diverge),
    and the lowest layer where it shows. A prefix run has no later tokens to smear the NaN back.

    A NaN loss at token t needs token t + 1 (its target), so an output-only divergence is searched
    over prefixes one token longer and named at the token that produced the bad prediction."""
    top_k = min(TOP_K, model.config.vocab_size)

    def bad(end: int) -> bool:  # the prefix tokens[:end] is non-finite
        return non_finite(*record(model, tokens[:end], state=state, ablation=ablation, top_k=top_k)) is not None

    low, high = 1, tokens.numel()
    while low < high:
        middle = (low + high) // 2
        if bad(middle):
            high = middle
        else:
            low = middle + 1
    found = non_finite(*record(model, tokens[:low], state=state, ablation=ablation, top_k=top_k))
    layer, what = found if found else (OUTPUT_LAYER, "the output")
    index = low - 2 if layer == OUTPUT_LAYER and what == "the model's loss" else low - 1
    return Divergence(max(index, 0), state.position + max(index, 0), layer, what)


def check_vocabulary(model: HopeTransformer, data: bytes) -> None:
    """RunRefused (one line) when the text holds a byte the model has no token for: a checkpoint may have
    vocab_size under 256, and UTF-8 text outside ASCII needs bytes up to 255."""
    vocab = model.config.vocab_size
    index = next((i for i, byte in enumerate(data) if byte >= vocab), None)
    if index is not None:
        raise RunRefused(f"This model reads bytes 0-{vocab - 1} only (vocab_size {vocab}): token {index} of the input is "
                         f"byte {data[index]} ('{escape_markdown(ByteTokenizer.token_label(data[index]))}'). "
                         "Use text within its range (ASCII is bytes 0-127).")


def degenerate(recording: Recording) -> str | None:
    """One line when the model's predictions are uniform over its whole vocabulary on every token (weights that
    overflowed into a constant output: the loss is ln vocab_size everywhere), else None."""
    vocab = recording.config.vocab_size
    top = recording.stream("topk.probs")[:, 0]
    if top.numel() == 0 or float(top.max()) > (1 + UNIFORM_TOLERANCE) / vocab:
        return None
    return (f"This model is degenerate: its predictions are uniform over all {vocab} bytes on every token (loss "
            f"ln {vocab} = {math.log(vocab):.3f} nats), whatever the text; its weights are broken (e.g. overflowed).")


def guarded_record(model: HopeTransformer, text_or_tokens, state: HopeState | None = None,
                   ablation: Ablation | None = None, **options) -> tuple[Recording, HopeState]:
    """:func:`record`, refused (RunRefused, one line) instead of returning results that mean nothing: bytes the
    model has no token for, the first non-finite token, a degenerate model. ``state`` is never modified."""
    state = state if state is not None else model.init_state(1)
    ablation = ablation or Ablation()
    if isinstance(text_or_tokens, str):
        check_vocabulary(model, text_or_tokens.encode("utf-8", errors="replace"))
    options.setdefault("top_k", min(TOP_K, model.config.vocab_size))
    recording, new_state = record(model, text_or_tokens, state=state, ablation=ablation, **options)
    _refuse_if_non_finite(model, recording, new_state, state, ablation, offset=0)
    _refuse_if_degenerate(recording)
    return recording, new_state


def _refuse_if_degenerate(recording: Recording):
    if (problem := degenerate(recording)) is not None:
        raise RunRefused(problem)


def _refuse_if_non_finite(model, recording, new_state, state, ablation, offset: int):
    if non_finite(recording, new_state):
        divergence = locate_divergence(model, recording.tokens, state, ablation)
        label = ByteTokenizer.token_label(int(recording.tokens[divergence.token_index]))
        raise RunRefused(Divergence(divergence.token_index + offset, divergence.position, divergence.layer,
                                    divergence.what).message(label))


@dataclass
class PieceRun:
    recording: Recording
    state: HopeState
    tokens_asked: int  # the whole input; recording.n_tokens of them were read


def guarded_record_in_pieces(model: HopeTransformer, text: str, state: HopeState | None = None,
                             ablation: Ablation | None = None, piece_tokens: int = 512,
                             keep_going: Callable[[int], bool] = lambda read: True, max_tokens: int = 2048) -> PieceRun:
    """:func:`guarded_record` read ``piece_tokens`` at a time, asking ``keep_going(tokens read)`` before
    each piece after the first: a deadline or a cancelled run stops between pieces and returns what was
    read (the recording and state of a prefix of the ``tokens_asked``). The result equals
    one call's: each piece continues the last one's state, and its last loss scores the next piece's
    first token. A non-finite piece is refused (RunRefused, naming the token in the whole run)."""
    data = text.encode("utf-8", errors="replace")
    if len(data) > max_tokens:
        raise RunRefused(f"The input is {len(data)} tokens; a run takes at most {max_tokens}.")
    check_vocabulary(model, data)
    tokens = torch.tensor(list(data), dtype=torch.long)
    start = state if state is not None else model.init_state(1)
    ablation = ablation or Ablation()
    parts, current, read = [], start, 0
    while read < tokens.numel() and (read == 0 or keep_going(read)):
        end = min(read + piece_tokens, tokens.numel())
        following = int(tokens[end]) if end < tokens.numel() else None
        piece, after = record(model, tokens[read:end], state=current, ablation=ablation, max_tokens=max_tokens,
                              next_token=following, top_k=min(TOP_K, model.config.vocab_size))
        _refuse_if_non_finite(model, piece, after, current, ablation, offset=read)
        parts.append(piece)
        current, read = after, end
    complete = read == tokens.numel()
    recording = Recording.join(parts, text if complete else data[:read].decode("utf-8", errors="replace"))
    if not complete:  # the last piece's last loss scored a token that was not read
        recording.tensors["loss"][-1] = float("nan")
    _refuse_if_degenerate(recording)
    return PieceRun(recording, current, tokens.numel())
