"""The memory's measured targets: what the shipped model must show, each against a control that
isolates the memory (``controls.py``), each with 95% bootstrap intervals over sequences.

    reread       a prose passage read again after a gap beyond the window: second/first loss ratio,
                 own memory against another document's (swap) and the initial one (reset)
    reread_variants  the reread verbatim, its sentences shuffled, a tenth of its bytes corrupted, or
                 paraphrased (paraphrases.py): own against swap memory on the same second reading
    copy         a random letter string copied after a gap: nats per letter, against the same text
                 whose first reading was another string
    recall       key-value pairs spread beyond the window, then queried: answer accuracy, own vs swap
    passkey      a key stated once, asked after ``distance`` tokens: whole-key accuracy, own vs swap
    phrase       one phrase read many times in a row: mean loss per copy
    gating       the learning rate on a passage's second reading against the same passage read new at
                 the same stream position, per layer; the rate's slope on surprise with position as a
                 covariate; the share of rates pinned within 1% of a bound
    by_wording   copy, recall or passkey over many wordings (phrasings.py): trained or held-out
    streaming    long inputs read in calls: finite outputs and the largest fast-weight norm per stream
    bits_per_byte  held-out prose, fresh state per window
    loss_by_position  mean loss in position bins over long windows read in calls

Text is ASCII (one byte per character) so every row of a batch has the same layout. Prose comes from
the caller (held-out documents); tests pass generated text.
"""
from __future__ import annotations

import random

import torch

from ..training import tasks
from ..ablation import Ablation
from ..model import HopeTransformer
from ..phrasings import ORIGINAL, wordings
from ..state import named_tensors
from .controls import reset_memory, swapped_memory
from .measure import masked_mean, score
from .stats import Estimate, bootstrap, bootstrap_ratio, paired_difference

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
    logits of the call before, so the result equals one call's; for a ``cms_objective`` "lm" model only when
    the call edges fall on its shortest period's blocks, since a call edge cuts its levels' gradient)."""
    parts, previous = [], None
    for start in range(0, tokens.shape[1], call_tokens):
        end = start + call_tokens
        following = tokens[:, end] if end < tokens.shape[1] else None  # an lm model's last target in this call
        out = score(model, tokens[:, start:end], state=state, ablation=ablation, following=following)
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


REREAD_VARIANTS = ("verbatim", "shuffled", "corrupted", "paraphrased")
CORRUPTED_SHARE = 0.1  # of a passage's bytes replaced by other letters


def reread_variant(kind: str, passage: str, paraphrase: str, rng: random.Random) -> tuple[str, list[bool]]:
    """A passage's second reading in ``kind`` (REREAD_VARIANTS), with a per-byte flag: True where the byte
    is the passage's own (False at corrupted bytes). Shuffled: its sentences in another order."""
    if kind == "verbatim":
        return passage, [True] * len(passage)
    if kind == "paraphrased":
        return paraphrase, [True] * len(paraphrase)
    if kind == "shuffled":
        sentences = [s if s.endswith(".") else s + "." for s in passage.split(". ")]
        if len(sentences) < 2:
            raise ValueError(f"shuffling needs two sentences or more: {passage[:40]!r}")
        order = list(range(len(sentences)))
        while order == sorted(order):
            rng.shuffle(order)
        text = " ".join(sentences[i] for i in order)
        return text, [True] * len(text)
    if kind == "corrupted":
        chars, clean = list(passage), [True] * len(passage)
        for i in rng.sample(range(len(passage)), round(CORRUPTED_SHARE * len(passage))):
            chars[i] = rng.choice([c for c in tasks.LETTERS if c != passage[i]])
            clean[i] = False
        return "".join(chars), clean
    raise ValueError(f"unknown reread variant {kind!r}; expected one of {', '.join(REREAD_VARIANTS)}")


def reread_variants(model: HopeTransformer, pairs, fillers: list[str], gap: int, seed: int = 0,
                    ablation: Ablation = FULL, controls=CONTROLS, kinds=REREAD_VARIANTS) -> list[dict]:
    """Each passage of ``pairs`` ((passage, paraphrase), e.g. ``paraphrases.PARAPHRASES``) read, then its
    filler, then read again in each variant, per variant the second reading's loss (bytes 1.. of it)
    under each control. ``ratio_own_swap`` is what the memory carries: the same second reading with the
    sequence's own fast weights over another passage's at the same stream position. Passages differ in
    length: each filler runs to a common stream position, so the gap is ``gap`` bytes or a little more.
    ``clean_own``/``clean_swap`` (corrupted only) score just the uncorrupted bytes."""
    rows = len(pairs)
    position = max(len(p) for p, _ in pairs) + gap
    if len(fillers) < rows or any(len(f) < position - len(p) for (p, _), f in zip(pairs, fillers)):
        raise ValueError(f"need {rows} fillers of {position - min(len(p) for p, _ in pairs)} bytes")
    prefix = _tokens([p + f[:position - len(p)] for (p, _), f in zip(pairs, fillers)])
    first_scores = read(model, prefix, ablation=ablation)
    first = torch.stack([first_scores.loss[i, 1:len(p)].mean() for i, (p, _) in enumerate(pairs)])
    states = _controls(model, first_scores.state, controls)
    out = []
    for kind in kinds:
        texts, flags = zip(*(reread_variant(kind, p, q, random.Random(f"targets/variants/{seed}/{kind}/{i}"))
                             for i, (p, q) in enumerate(pairs)))
        width = max(map(len, texts))
        tokens = _tokens([t.ljust(width) for t in texts])
        mask = torch.zeros(rows, width, dtype=torch.bool)
        clean = torch.zeros(rows, width, dtype=torch.bool)
        for i, (text, flag) in enumerate(zip(texts, flags)):
            mask[i, 1:len(text)] = True
            clean[i, :len(text)] = torch.tensor(flag)
        row = {"variant": kind, "gap": gap, "first": bootstrap(first, seed), "_first": first}
        for name, state in states.items():
            loss = score(model, tokens, state=state, ablation=ablation).loss
            row[name], row[f"_{name}"] = bootstrap(masked_mean(loss, mask), seed), masked_mean(loss, mask)
            if kind == "corrupted":
                row[f"clean_{name}"] = bootstrap(masked_mean(loss, mask & clean), seed)
        if "own" in states and "swap" in states:
            row["ratio_own_swap"] = bootstrap_ratio(row["_own"], row["_swap"], seed)
            row["ratio_own_first"] = bootstrap_ratio(row["_own"], first, seed)
        out.append(row)
    return out


def copy(model: HopeTransformer, n: int, gap: int, filler: tasks.Filler, length: int = 32,
         ablation: Ablation = FULL, seed: int = 0, decoy: bool = True, controls=CONTROLS,
         wording=ORIGINAL["repeat"], first_row: int = 0) -> dict:
    """``repeat: S <gap> | S`` with S random letters (or another ``wording``); nats per letter of the copy.
    Controls: swap and reset at the copy, and (``decoy``) the same rows with another random string as the
    first reading. Rows ``first_row`` .. ``first_row + n - 1`` of the seeded sequence of rows."""
    rows = range(first_row, first_row + n)
    samples = [tasks.repeated_string(random.Random(f"targets/copy/{seed}/{gap}/{i}"), length, gap=gap, filler=filler,
                                     wording=wording) for i in rows]
    decoys = []
    for i, sample in zip(rows, samples if decoy else []):
        other = "".join(random.Random(f"targets/decoy/{seed}/{i}").choice(tasks.LETTERS) for _ in range(length))
        start = len(wording.head)
        decoys.append(sample.text[:start] + other + sample.text[start + length:])
    answers = samples[0].answer_positions
    cut = answers[0] - len(wording.separator)  # the copy's call starts at its separator
    own = _tokens([s.text for s in samples])
    mask = torch.zeros(own.shape[1] - cut, dtype=torch.bool)
    mask[[a - cut for a in answers]] = True
    prefix = read(model, own[:, :cut], ablation=ablation)
    out = {"gap": answers[0] - (len(wording.head) + length)}
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


def queries_start(samples: list[tasks.TaskSample], marker: str = ";") -> int:
    """Where the queries of aligned recall samples begin: the last ``marker`` (the wording's ask, ";"
    in the original) before the first answer (the filler between pairs may hold it too). Rows are laid out alike (fixed-length keys, values and
    filler), so one cut and one answer mask serve all; ValueError if they are not."""
    cuts = {s.text.rindex(marker, 0, s.answer_positions[0]) for s in samples}
    if len(cuts) != 1:
        raise ValueError(f"recall samples are not aligned: their queries start at {sorted(cuts)[:4]}")
    return cuts.pop()


def recall(model: HopeTransformer, n: int, n_pairs: int, spread: int, filler: tasks.Filler,
           ablation: Ablation = FULL, seed: int = 0, controls=CONTROLS, wording=ORIGINAL["recall"],
           first_row: int = 0) -> dict:
    """Associative recall with ``spread`` filler bytes after each pair; answer-byte accuracy (argmax) and
    loss per answer byte (``loss_<condition>``). Rows ``first_row`` .. of the seeded sequence, in ``wording``."""
    samples = [tasks.associative_recall(random.Random(f"targets/recall/{seed}/{spread}/{i}"), n_pairs=n_pairs,
                                        spread=spread, filler=filler, wording=wording)
               for i in range(first_row, first_row + n)]
    tokens = _tokens([s.text for s in samples])
    cut = queries_start(samples, wording.marker)
    mask = torch.zeros(tokens.shape[1] - cut, dtype=torch.bool)
    mask[[a - cut for a in samples[0].answer_positions]] = True
    prefix = read(model, tokens[:, :cut], ablation=ablation)
    pair_bytes = len(wording.separator) + len(wording.pair) - 2  # {k} and {v} become two bytes each
    out = {"spread": spread, "pair_distance": pair_bytes + spread, "chance": 0.1, "prefix_tokens": cut}
    for name, state in _controls(model, prefix.state, controls).items():
        scores = score(model, tokens[:, cut:], state=state, ablation=ablation)
        accuracy, loss = masked_mean(scores.correct, mask), masked_mean(scores.loss, mask)
        out[name], out[f"_{name}"] = bootstrap(accuracy, seed), accuracy
        out[f"loss_{name}"], out[f"_loss_{name}"] = bootstrap(loss, seed), loss
    return out


def passkey(model: HopeTransformer, n: int, distance: int, filler: tasks.Filler, ablation: Ablation = FULL,
            seed: int = 0, digits: int = 5, call_tokens: int = CALL_TOKENS, controls=CONTROLS,
            wording=ORIGINAL["passkey"], first_row: int = 0) -> dict:
    """``The pass key is K. Remember it.`` (or another ``wording``) + ``distance`` filler bytes + the
    question; a row counts when every digit of the answer is the argmax (``loss_<condition>``: nats per
    digit). The prefix is read in calls of at most ``call_tokens`` with the state carried."""
    question, rows = wording.question, []
    for i in range(first_row, first_row + n):
        rng = random.Random(f"targets/passkey/{seed}/{distance}/{i}")
        key = "".join(rng.choice(tasks.DIGITS) for _ in range(digits))
        rows.append(wording.head + wording.render_fact(key) + filler(rng, distance) + question + key + ".\n")
    tokens = _tokens(rows)
    fact = wording.render_fact("0" * digits)
    cut = len(wording.head) + len(fact) + distance
    after_key = len(fact) - fact.index("0" * digits) - digits  # bytes of the fact after the key
    state = read(model, tokens[:, :cut], ablation=ablation, call_tokens=call_tokens).state
    mask = torch.zeros(tokens.shape[1] - cut, dtype=torch.bool)
    mask[len(question):len(question) + digits] = True
    out = {"distance": distance, "token_distance": after_key + distance + len(question) + 1}
    for name, control in _controls(model, state, controls).items():
        scores = score(model, tokens[:, cut:], state=control, ablation=ablation)
        accuracy, loss = (scores.correct[:, mask] == 1).all(1).float(), scores.loss[:, mask].mean(1)
        out[name], out[f"_{name}"] = bootstrap(accuracy, seed), accuracy
        out[f"loss_{name}"], out[f"_loss_{name}"] = bootstrap(loss, seed), loss
    return out


def wording_groups(wordings: tuple, n: int, seed: int = 0) -> list[tuple[object, int, int]]:
    """``n`` rows over ``wordings`` as (wording, first row, rows): as many wordings as give every one at
    least two rows (a swap control needs another row of the same layout), drawn by ``seed`` when fewer
    than all; rows split as evenly as they go."""
    if n < 2:
        raise ValueError(f"measuring by wording needs at least 2 rows, got {n}")
    count = min(len(wordings), n // 2)
    chosen = list(wordings) if count == len(wordings) else random.Random(f"targets/wordings/{seed}").sample(list(wordings), count)
    sizes = [n // count + (i < n % count) for i in range(count)]
    starts = [sum(sizes[:i]) for i in range(count)]
    return list(zip(chosen, starts, sizes))


def by_wording(measure, model: HopeTransformer, wordings: tuple, n: int, seed: int = 0, **settings) -> dict:
    """``measure`` (copy, recall or passkey) on ``n`` rows spread over ``wordings``: the rows of one wording
    are one batch (one layout), per-row results are pooled and every interval is over all ``n`` rows.
    A setting that differs between wordings (a token distance) is given as [least, most]."""
    parts = [measure(model, n=rows, wording=wording, first_row=start, seed=seed, **settings)
             for wording, start, rows in wording_groups(wordings, n, seed)]
    out = {"wordings": len(parts)}
    for key, value in parts[0].items():
        if key.startswith("_"):
            out[key] = torch.cat([part[key] for part in parts])
            out[key[1:]] = bootstrap(out[key], seed)
        elif not isinstance(value, Estimate):
            values = sorted({part[key] for part in parts})
            out[key] = values[0] if len(values) == 1 else [values[0], values[-1]]
    return out


WORDING_SPLITS = ("original", "trained", "heldout")  # the training's one wording, the many trained, the held-out


def across_wordings(task: str, model: HopeTransformer, n: int, seed: int = 0, **settings) -> dict[str, dict]:
    """``task`` ("passkey", "repeat" or "recall") measured on ``n`` rows in each wording split, side by side."""
    measure = {"passkey": passkey, "repeat": copy, "recall": recall}[task]
    return {split: by_wording(measure, model, wordings(task, split), n, seed, **settings) for split in WORDING_SPLITS}


def phrase(model: HopeTransformer, text: str = "the cat sat on the mat. ", times: int = 8,
           ablation: Ablation = FULL) -> list[float]:
    """Mean loss (nats/byte) of each copy of ``text`` read ``times`` times in a row (the first copy's
    first byte has no prediction)."""
    loss = score(model, _tokens([text * times]), ablation=ablation).loss[0]
    return [float(loss[i * len(text):(i + 1) * len(text)].nanmean()) for i in range(times)]


def _segment_rates(model: HopeTransformer, texts: list[str], ablation: Ablation = FULL) -> dict[int, dict[str, torch.Tensor]]:
    """Per layer with a memory: the learning rate and the surprise per token [B, T] (mean over heads)."""
    trace = score(model, _tokens(texts), ablation=ablation, trace=True).trace
    return {i: {"rate": layer.memory.learning_rate.float().mean(1).cpu(),
                "surprise": layer.memory.surprise.float().mean(1).cpu(),
                "all_rates": layer.memory.learning_rate.float().cpu()}
            for i, layer in enumerate(trace.layers) if layer.memory is not None}


def surprise_slope(rate: torch.Tensor, surprise: torch.Tensor) -> torch.Tensor:
    """Per row [B]: the slope of the learning rate on surprise (standardised within the row), fitted with
    log position as a covariate (rates drift with position, fastest early in a stream)."""
    B, T = rate.shape
    z = (surprise - surprise.mean(1, keepdim=True)) / surprise.std(1, keepdim=True).clamp_min(1e-12)
    position = torch.log1p(torch.arange(T, dtype=rate.dtype)).expand(B, T)
    design = torch.stack([torch.ones_like(z), z, position], -1).double()  # [B, T, 3]
    coefficients = torch.linalg.lstsq(design, rate.double()[..., None]).solution  # [B, 3, 1]
    return coefficients[:, 1, 0].float()


def gating(model: HopeTransformer, passages: list[str], fillers: list[str], gap: int, length: int = 128,
           seed: int = 0, ablation: Ablation = FULL) -> list[dict]:
    """Per layer: the mean learning rate on a passage read a second time (``gap`` bytes after the first)
    against the same passage read new at the same stream position (after another row's passage and the
    same filler): ``reread_minus_new`` is the familiarity effect with position held fixed. Also the
    first reading, ``second_minus_first`` (confounded with position), the slope of the rate on surprise
    with position as a covariate (``surprise_slope``, over all rows) and the share of (token, head)
    rates within 1% of 0 or the maximum."""
    rows = [(p[:length], f[:gap]) for p, f in zip(passages, fillers)]
    others = rows[1:] + rows[:1]  # the new passage before: another row's (a passage never precedes itself)
    texts = [p + f + p for p, f in rows] + [q + f + p for (p, f), (q, _) in zip(rows, others)]
    n, out = len(rows), []
    for i, layer in _segment_rates(model, texts, ablation).items():
        rate, top = layer["rate"], model.blocks[i].memory.max_learning_rate
        first, second, new = rate[:n, :length].mean(1), rate[:n, length + gap:].mean(1), rate[n:, length + gap:].mean(1)
        pinned = ((layer["all_rates"][:n] < 0.01 * top) | (layer["all_rates"][:n] > 0.99 * top)).float().mean(dim=(1, 2))
        out.append({"layer": i, "gap": gap, "first": bootstrap(first, seed), "second": bootstrap(second, seed),
                    "new_at_same_position": bootstrap(new, seed),
                    "reread_minus_new": paired_difference(second, new, seed), "_reread_minus_new": second - new,
                    "second_minus_first": paired_difference(second, first, seed),
                    "surprise_slope": bootstrap(surprise_slope(rate, layer["surprise"]), seed),
                    "pinned_share": bootstrap(pinned, seed)})
    return out


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
