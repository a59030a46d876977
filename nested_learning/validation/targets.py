"""The memory's measured targets: what the shipped model must show, each against a control that
isolates the memory (``controls.py``), each with 95% bootstrap intervals over sequences.

    reread       a prose passage read again after a gap beyond the window: second/first loss ratio,
                 own memory against another document's (swap) and the initial one (reset)
    copy         a random letter string copied after a gap: nats per letter, against the same text
                 whose first reading was another string
    recall       key-value pairs spread beyond the window, then queried: answer accuracy, own vs swap
    passkey      a key stated once, asked after ``distance`` tokens: whole-key accuracy, own vs swap
    phrase       one phrase read many times in a row: mean loss per copy
    gating       the learning rate on a passage's second reading against its first, per layer, and
                 the share of rates pinned within 1% of a bound
    streaming    long inputs read in calls: finite outputs and the largest fast-weight norm per stream
    bits_per_byte  held-out prose, fresh state per window
    loss_by_position  mean loss in position bins over long windows read in calls

Text is ASCII (one byte per character) so every row of a batch has the same layout. Prose comes from
the caller (held-out documents); tests pass generated text.
"""
from __future__ import annotations

import random

import torch

from .. import tasks
from ..ablation import Ablation
from ..model import HopeTransformer
from ..state import named_tensors
from .controls import reset_memory, swapped_memory
from .measure import masked_mean, score
from .stats import bootstrap, bootstrap_ratio, paired_difference

FULL = Ablation()


def _tokens(texts: list[str]) -> torch.Tensor:
    lengths = {len(t) for t in texts}
    if len(lengths) != 1:
        raise AssertionError(f"rows of one batch differ in length: {sorted(lengths)}")
    return torch.tensor([list(t.encode("ascii")) for t in texts], dtype=torch.long)


CALL_TOKENS = 2048  # the longest call a measurement makes; longer inputs carry the state across calls


def read(model: HopeTransformer, tokens: torch.Tensor, state=None, ablation: Ablation = FULL,
         call_tokens: int = CALL_TOKENS):
    """Scores of ``tokens`` [B, T] read in calls of at most ``call_tokens`` with the state carried
    (losses and hits concatenated; the first position of each later call is scored from the carried
    logits of the call before, so the result equals one call's)."""
    parts, previous = [], None
    for start in range(0, tokens.shape[1], call_tokens):
        out = score(model, tokens[:, start:start + call_tokens], state=state, ablation=ablation)
        if previous is not None:  # the first token of this call is predicted by the last logits of the previous
            logits = previous.logits[:, -1].float()
            target = tokens[:, start].to(logits.device)
            out.loss[:, 0] = torch.nn.functional.cross_entropy(logits, target, reduction="none").cpu()
            out.correct[:, 0] = (logits.argmax(-1) == target).float().cpu()
        parts.append(out)
        state, previous = out.state, out
    if len(parts) == 1:
        return parts[0]
    last = parts[-1]
    return type(last)(torch.cat([p.loss for p in parts], 1), torch.cat([p.correct for p in parts], 1), last.state,
                      last.logits)


CONTROLS = ("own", "swap", "reset")


def _controls(model, state, names=CONTROLS) -> dict:
    """The state under each control: its own, another row's fast weights (swap), the initial ones (reset)."""
    make = {"own": lambda: state, "swap": lambda: swapped_memory(state), "reset": lambda: reset_memory(state, model)}
    return {name: make[name]() for name in names}


def reread(model: HopeTransformer, passages: list[str], fillers: list[str], gap: int, length: int = 128,
           ablation: Ablation = FULL, seed: int = 0, controls=CONTROLS) -> dict:
    """Each passage (``length`` bytes) read, then ``gap`` bytes of its filler, then the passage again.

    Loss is averaged over bytes 1..length-1 of each reading (byte 0 has no in-reading context).
    Returns per-condition second-reading means, the first reading, and ratios with intervals."""
    rows = [(p[:length], f[:gap]) for p, f in zip(passages, fillers)]
    if any(len(p) < length or len(f) < gap for p, f in rows):
        raise ValueError(f"passages need {length} bytes and fillers {gap}")
    prefix = _tokens([p + f for p, f in rows])
    second = _tokens([p for p, _ in rows])
    first_scores = read(model, prefix, ablation=ablation)
    mask = torch.zeros(prefix.shape[1], dtype=torch.bool)
    mask[1:length] = True
    first = masked_mean(first_scores.loss, mask)
    out = {"gap": gap, "first": bootstrap(first, seed)}
    for name, state in _controls(model, first_scores.state, controls).items():
        loss = masked_mean(score(model, second, state=state, ablation=ablation).loss, mask[:length])
        out[name] = bootstrap(loss, seed)
        out[f"ratio_{name}"] = bootstrap_ratio(loss, first, seed)
        out[f"_{name}"] = loss
    out["_first"] = first
    return out


def copy(model: HopeTransformer, n: int, gap: int, filler: tasks.Filler, length: int = 32,
         ablation: Ablation = FULL, seed: int = 0, decoy: bool = True, controls=CONTROLS) -> dict:
    """``repeat: S <gap> | S`` with S random letters; nats per letter of the copy. Controls: swap and reset
    at the copy, and (``decoy``) the same rows with another random string as the first reading."""
    samples = [tasks.repeated_string(random.Random(f"targets/copy/{seed}/{gap}/{i}"), length, gap=gap, filler=filler)
               for i in range(n)]
    decoys = []
    for i, sample in enumerate(samples if decoy else []):
        other = "".join(random.Random(f"targets/decoy/{seed}/{i}").choice(tasks.LETTERS) for _ in range(length))
        start = len("repeat: ")
        decoys.append(sample.text[:start] + other + sample.text[start + length:])
    answers = samples[0].answer_positions
    cut = answers[0] - len(" | ")  # the copy's call starts at its separator
    own = _tokens([s.text for s in samples])
    mask = torch.zeros(own.shape[1] - cut, dtype=torch.bool)
    mask[[a - cut for a in answers]] = True
    prefix = read(model, own[:, :cut], ablation=ablation)
    out = {"gap": answers[0] - (len("repeat: ") + length)}
    losses = {}
    for name, state in _controls(model, prefix.state, controls).items():
        losses[name] = masked_mean(score(model, own[:, cut:], state=state, ablation=ablation).loss, mask)
    if decoys:
        decoy_tokens = _tokens(decoys)
        decoy_prefix = read(model, decoy_tokens[:, :cut], ablation=ablation)
        decoy_copy = score(model, decoy_tokens[:, cut:], state=decoy_prefix.state, ablation=ablation)
        losses["no_first_reading"] = masked_mean(decoy_copy.loss, mask)
    for name, loss in losses.items():
        out[name], out[f"_{name}"] = bootstrap(loss, seed), loss
    return out


def queries_start(samples: list[tasks.TaskSample]) -> int:
    """Where the queries of aligned recall samples begin: the last ";" before the first answer (the
    filler between pairs may hold ";" too). Rows are laid out alike (fixed-length keys, values and
    filler), so one cut and one answer mask serve all; ValueError if they are not."""
    cuts = {s.text.rindex(";", 0, s.answer_positions[0]) for s in samples}
    if len(cuts) != 1:
        raise ValueError(f"recall samples are not aligned: their queries start at {sorted(cuts)[:4]}")
    return cuts.pop()


def recall(model: HopeTransformer, n: int, n_pairs: int, spread: int, filler: tasks.Filler,
           ablation: Ablation = FULL, seed: int = 0, controls=CONTROLS) -> dict:
    """Associative recall with ``spread`` filler bytes after each pair; answer-byte accuracy (argmax) and
    loss per answer byte (``loss_<condition>``)."""
    samples = [tasks.associative_recall(random.Random(f"targets/recall/{seed}/{spread}/{i}"), n_pairs=n_pairs,
                                        spread=spread, filler=filler) for i in range(n)]
    tokens = _tokens([s.text for s in samples])
    cut = queries_start(samples)
    mask = torch.zeros(tokens.shape[1] - cut, dtype=torch.bool)
    mask[[a - cut for a in samples[0].answer_positions]] = True
    prefix = read(model, tokens[:, :cut], ablation=ablation)
    out = {"spread": spread, "pair_distance": len(" ab=12") + spread, "chance": 0.1, "prefix_tokens": cut}
    for name, state in _controls(model, prefix.state, controls).items():
        scores = score(model, tokens[:, cut:], state=state, ablation=ablation)
        accuracy, loss = masked_mean(scores.correct, mask), masked_mean(scores.loss, mask)
        out[name], out[f"_{name}"] = bootstrap(accuracy, seed), accuracy
        out[f"loss_{name}"], out[f"_loss_{name}"] = bootstrap(loss, seed), loss
    return out


def passkey(model: HopeTransformer, n: int, distance: int, filler: tasks.Filler, ablation: Ablation = FULL,
            seed: int = 0, digits: int = 5, call_tokens: int = CALL_TOKENS, controls=CONTROLS) -> dict:
    """``The pass key is K. Remember it.`` + ``distance`` filler bytes + the question; a row counts when
    every digit of the answer is the argmax (``loss_<condition>``: nats per digit). The prefix is read in
    calls of at most ``call_tokens`` with the state carried."""
    head, tail, question = "passkey: " + tasks.PASSKEY_FACT_HEAD, tasks.PASSKEY_FACT_TAIL, tasks.PASSKEY_QUESTION
    rows = []
    for i in range(n):
        rng = random.Random(f"targets/passkey/{seed}/{distance}/{i}")
        key = "".join(rng.choice(tasks.DIGITS) for _ in range(digits))
        rows.append(head + key + tail + filler(rng, distance) + question + key + ".\n")
    tokens = _tokens(rows)
    cut = len(head) + digits + len(tail) + distance
    state = read(model, tokens[:, :cut], ablation=ablation, call_tokens=call_tokens).state
    mask = torch.zeros(tokens.shape[1] - cut, dtype=torch.bool)
    mask[len(question):len(question) + digits] = True
    out = {"distance": distance, "token_distance": len(tail) + distance + len(question) + 1}
    for name, control in _controls(model, state, controls).items():
        scores = score(model, tokens[:, cut:], state=control, ablation=ablation)
        accuracy, loss = (scores.correct[:, mask] == 1).all(1).float(), scores.loss[:, mask].mean(1)
        out[name], out[f"_{name}"] = bootstrap(accuracy, seed), accuracy
        out[f"loss_{name}"], out[f"_loss_{name}"] = bootstrap(loss, seed), loss
    return out


def phrase(model: HopeTransformer, text: str = "the cat sat on the mat. ", times: int = 8,
           ablation: Ablation = FULL) -> list[float]:
    """Mean loss (nats/byte) of each copy of ``text`` read ``times`` times in a row (the first copy's
    first byte has no prediction)."""
    loss = score(model, _tokens([text * times]), ablation=ablation).loss[0]
    return [float(loss[i * len(text):(i + 1) * len(text)].nanmean()) for i in range(times)]


def gating(model: HopeTransformer, passages: list[str], fillers: list[str], gap: int, length: int = 128,
           seed: int = 0) -> list[dict]:
    """Per layer: mean learning rate over a passage's first and second reading (``gap`` bytes apart),
    their paired difference, and the share of (token, head) rates within 1% of 0 or the maximum."""
    texts = [p[:length] + f[:gap] + p[:length] for p, f in zip(passages, fillers)]
    trace = {}
    score(model, _tokens(texts), trace=trace)
    rows = []
    for i, layer in sorted(trace.get("layers", {}).items()):
        if "memory" not in layer:
            continue
        rate = layer["memory"]["learning_rate"].float().mean(1).cpu()  # [B, T] over heads
        all_rates = layer["memory"]["learning_rate"].float().cpu()
        top = model.blocks[i].memory.max_learning_rate
        first, second = rate[:, :length].mean(1), rate[:, length + gap:].mean(1)
        pinned = ((all_rates < 0.01 * top) | (all_rates > 0.99 * top)).float().mean(dim=(1, 2))
        rows.append({"layer": i, "first": bootstrap(first, seed), "second": bootstrap(second, seed),
                     "second_minus_first": paired_difference(second, first, seed), "pinned_share": bootstrap(pinned, seed)})
    return rows


def streaming(model: HopeTransformer, text: bytes, call_tokens: int = 2048) -> dict:
    """Read ``text`` in calls; whether every logit stayed finite, the largest norm each fast-weight stream
    reached (per head or per level, at every call's end state) and those norms call by call."""
    tokens = torch.tensor(list(text), dtype=torch.long)[None]
    state, finite, largest, per_call = None, True, {}, []
    for start in range(0, tokens.shape[1], call_tokens):
        out = score(model, tokens[:, start:start + call_tokens], state=state)
        state = out.state
        finite &= bool(torch.isfinite(out.logits).all())
        norms = {}
        for name, tensor in named_tensors(state):
            if tensor.is_floating_point() and ("memory" in name or "projections" in name) and "conv" not in name:
                norms[name] = float(tensor.float().flatten(2).norm(dim=-1).max()) if tensor.dim() > 2 else float(tensor.norm())
                largest[name] = max(largest.get(name, 0.0), norms[name])
        per_call.append(norms)
    return {"tokens": tokens.shape[1], "finite": finite, "max_norm": largest, "per_call": per_call}


def bits_per_byte(model: HopeTransformer, windows: torch.Tensor, ablation: Ablation = FULL, seed: int = 0):
    """Held-out bits per byte, one fresh state per window [N, T]; an Estimate over windows."""
    loss = read(model, windows, ablation=ablation).loss[:, 1:].mean(1) / torch.log(torch.tensor(2.0))
    return bootstrap(loss, seed)


POSITION_BINS = (0, 16, 64, 256, 1024, 4096, 16384)  # bin i holds positions (bins[i], bins[i + 1]]


def loss_by_position(model: HopeTransformer, windows: torch.Tensor, ablation: Ablation = FULL, seed: int = 0) -> list[dict]:
    """Mean loss (nats/byte) per position bin over windows [N, T] read in calls: one row per bin
    that the windows reach, an Estimate over windows."""
    loss = read(model, windows, ablation=ablation).loss
    rows = []
    for low, high in zip(POSITION_BINS, POSITION_BINS[1:]):
        if low >= loss.shape[1]:
            break
        rows.append({"positions": f"{low + 1}-{min(high, loss.shape[1] - 1)}", "first": low + 1,
                     "last": min(high, loss.shape[1] - 1), "loss": bootstrap(loss[:, low + 1:high + 1].mean(1), seed),
                     "_loss": loss[:, low + 1:high + 1].mean(1)})
    return rows
