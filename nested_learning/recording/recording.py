"""Recording: what one run of the model did, token by token, as tensors with stable names.

Tensor names: ``tokens``, ``loss``, ``topk.ids``, ``topk.probs`` and the per-layer names of
``streams.py`` (memory streams and factors, CMS inputs and states, attention weights). CMS update events
(:meth:`Recording.cms_events`) are derived from these by an exact replay of the layer's CMS chain.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import torch

from ..ablation import Ablation
from ..memories.cms import ContinuumMemorySystem
from ..config import HopeConfig
from ..ops import key_feature_map
from ..state import CMSLevelState
from ..tokenizer import ByteTokenizer
from ..trace import CMSTrace
from . import streams
from .events import level_events
from .replay import CMSReplay, LMUpdatesReplay
from .reconstruction import predictions, rebuild_memory

FORMAT = "nested_learning.recording"
FORMAT_VERSION = "1"
EVENT_FIELDS = ("token_index", "update_norm", "objective_before", "objective_after")
MEMORY_FACTORS = ("keys", "writes", "retention", "initial.memory", "momentum_gate", "initial.momentum")
# A memory layer's fast matrices and what they are called on screen (memory_depth 2 has two).
MATRICES = {"memory": "memory M (depth 2: W1, values x hidden)", "hidden_memory": "W2 (hidden x keys, depth 2)"}


class RecordingError(ValueError):
    """A recording that cannot be made or read; the message is one line."""


@dataclass
class Recording:
    config: HopeConfig
    tensors: dict[str, torch.Tensor]
    text: str | None = None
    ablation: Ablation = field(default_factory=Ablation)
    start_position: int = 0  # stream position of the first recorded token
    meta: dict = field(default_factory=dict)
    _events: pd.DataFrame | None = field(default=None, init=False, repr=False, compare=False)
    _replays: dict = field(default_factory=dict, init=False, repr=False, compare=False)  # {layer: CMSReplay}, at most one
    _rebuilt: dict = field(default_factory=dict, init=False, repr=False, compare=False)  # {name: keys, writes, values rebuilt}

    # ---- shape of the run -------------------------------------------------------------------
    @property
    def tokens(self) -> torch.Tensor:
        return self.tensors["tokens"]

    @property
    def n_tokens(self) -> int:
        return int(self.tokens.shape[0])

    @property
    def memory_layers(self) -> list[int]:
        return sorted(int(m.group(1)) for k in self.tensors if (m := re.fullmatch(r"layers\.(\d+)\.memory\.surprise", k)))

    @property
    def cms_layers(self) -> list[int]:
        return sorted(int(m.group(1)) for k in self.tensors if (m := re.fullmatch(r"layers\.(\d+)\.cms\.input", k)))

    def stream(self, name: str) -> torch.Tensor:
        """A tensor by name. A memory's keys [T, H, dk], writes and values [T, H, d] are rebuilt (once) from
        what the file keeps in their place (``streams.REBUILT_FROM``): the unit keys and the errors."""
        if name in self.tensors:
            return self.tensors[name]
        if not self.has_stream(name):
            raise KeyError(f"no stream {name!r} in this recording")
        if name not in self._rebuilt:
            self._rebuilt[name] = self._rebuild(name)
        return self._rebuilt[name]

    def has_stream(self, name: str) -> bool:
        if name in self.tensors:
            return True
        source = streams.rebuilt_from(name)
        if source is None or source not in self.tensors:
            return False
        # momentum's and depth 2's errors are against the chunk-start memory, which no file keeps: their values are stored
        layer = name.removesuffix(name.rsplit(".", 1)[1])
        return not name.endswith(".values") or not {layer + "momentum_gate", layer + "write_rate"} & self.tensors.keys()

    def _rebuild(self, name: str) -> torch.Tensor:
        source = self.tensors[streams.rebuilt_from(name)]
        layer = name.removesuffix(name.rsplit(".", 1)[1])  # "layers.{i}.memory."
        if name.endswith(".keys"):  # the model's own feature map, bit for bit (the recorder checked)
            return key_feature_map(source, self.config.key_expansion)
        if name.endswith(".writes") or name.endswith(".hidden_writes"):  # the recorder's own product: bit for bit
            rate = self.tensors.get(layer + "write_rate", self.tensors[layer + "learning_rate"])  # depth 2: rho_t
            return source * rate[..., None]
        prediction = predictions(self.tensors[layer + "initial.memory"], self.stream(layer + "keys"),
                                 self.stream(layer + "writes"), self.tensors[layer + "retention"])
        return (prediction + source.double()).float()

    def memory_stream(self, layer: int, name: str) -> torch.Tensor:
        """A layer's memory stream (``streams.MEMORY_STREAMS``, [T, H]) or factor (keys [T, H, dk], writes and
        values [T, H, d])."""
        return self.stream(streams.memory(layer, name))

    def has_memory_stream(self, layer: int, name: str) -> bool:
        return self.has_stream(streams.memory(layer, name))

    def summary(self) -> dict[str, float]:
        """Headline numbers: tokens, mean next-token loss (nats; over the tokens that have a next token
        and a finite loss), bits per byte, and surprise averaged over memory layers and heads."""
        loss = self.stream("loss")[:-1].double()
        loss = loss[torch.isfinite(loss)]
        surprises = [self.memory_stream(i, "surprise").double().mean() for i in self.memory_layers]
        mean_loss = float(loss.mean()) if loss.numel() else math.nan
        return {"tokens": self.n_tokens, "mean_loss": mean_loss, "bits_per_byte": mean_loss / math.log(2),
                "mean_surprise": float(torch.stack(surprises).mean()) if surprises else math.nan}

    # ---- tables -----------------------------------------------------------------------------
    def token_frame(self) -> pd.DataFrame:
        """One row per token: id, printable label, next-token loss, top-k predictions."""
        ids = self.tokens.tolist()
        label = ByteTokenizer.token_label
        frame = pd.DataFrame({"token_index": range(self.n_tokens),
                              "position": [self.start_position + i for i in range(self.n_tokens)],
                              "token_id": ids, "token": [label(i) for i in ids],
                              "loss": self.tensors["loss"].double().numpy()})
        top_ids, top_probs = self.tensors["topk.ids"], self.tensors["topk.probs"]
        for r in range(top_ids.shape[1]):
            frame[f"top{r + 1}"] = [label(i) for i in top_ids[:, r].tolist()]
            frame[f"top{r + 1}_prob"] = top_probs[:, r].double().numpy()
        return frame

    def per_token(self) -> pd.DataFrame:
        """Long format: one row per (token, layer, head) with every memory stream and the token columns."""
        tokens = self.token_frame()[["token_index", "position", "token_id", "token", "loss"]]
        parts = []
        for layer in self.memory_layers:
            T, H = self.memory_stream(layer, "surprise").shape
            columns = {"token_index": torch.arange(T).repeat_interleave(H).numpy(), "layer": layer,
                       "head": torch.arange(H).repeat(T).numpy()}
            for name in streams.MEMORY_STREAMS + streams.OPTIONAL_MEMORY_STREAMS:
                if self.has_memory_stream(layer, name):
                    columns[name] = self.memory_stream(layer, name).double().reshape(-1).numpy()
            parts.append(pd.DataFrame(columns))
        if not parts:
            return tokens
        return tokens.merge(pd.concat(parts, ignore_index=True), on="token_index", how="right")

    @property
    def cms_learns_from_loss(self) -> bool:
        """Whether the CMS levels learn from the next-token loss (``cms_objective="lm"``): their weights are
        then the recorded ones after each update, not a replay of the chain."""
        return self.config.cms_objective == "lm" and bool(self.config.cms_periods)

    def cms_events(self) -> pd.DataFrame:
        """One row per CMS level update: layer, level, period, token index and position, update norm and the
        level's objective (mean over the block's pairs of 1/2||W k - v||^2) before and after the update.

        Derived exactly by replaying each layer's CMS chain from the recorded input (cached). An lm level's
        objective is the model's loss, not replayed: its rows give the update norm and NaN objectives."""
        if self._events is None and self.cms_learns_from_loss:
            self._events = self._lm_events()
        if self._events is None:
            rows = []
            for layer in self.cms_layers:
                _, trace = self._replay_cms(layer, trace=True)
                for level, period in enumerate(self.config.cms_periods):
                    pairs = trace.levels[level] if trace is not None else None
                    if pairs is None:  # level switched off, or updates off: no events
                        continue
                    initial = lambda n: self.tensors[streams.cms(layer, f"initial.{level}.{n}")]
                    events = level_events(pairs.keys[0], pairs.values[0], pairs.writes[0], pairs.learning_rate[0],
                                          float(pairs.retention), period, self.start_position, initial("memory"),
                                          initial("pending"))
                    frame = pd.DataFrame({f: events[f].numpy() for f in EVENT_FIELDS})
                    frame.insert(0, "period", period)
                    frame.insert(0, "level", level)
                    frame.insert(0, "layer", layer)
                    frame.insert(4, "position", frame["token_index"] + self.start_position)
                    rows.append(frame)
            columns = ["layer", "level", "period", "token_index", "position", *EVENT_FIELDS[1:]]
            self._events = pd.concat(rows, ignore_index=True) if rows else pd.DataFrame(columns=columns)
        return self._events

    def _lm_events(self) -> pd.DataFrame:
        rows = []
        for layer in self.cms_layers:
            for level, period in enumerate(self.config.cms_periods):
                tokens = self.tensors[streams.cms(layer, f"updates.{level}.tokens")]
                memory = self.tensors[streams.cms(layer, f"updates.{level}.memory")].double()
                before = torch.cat([self.tensors[streams.cms(layer, f"initial.{level}.memory")].double()[None], memory[:-1]])
                norms = (memory - before).flatten(1).norm(dim=1)
                rows += [{"layer": layer, "level": level, "period": period, "token_index": int(t),
                          "position": int(t) + self.start_position, "update_norm": float(n),
                          "objective_before": math.nan, "objective_after": math.nan} for t, n in zip(tokens, norms)]
        columns = ["layer", "level", "period", "token_index", "position", *EVENT_FIELDS[1:]]
        return pd.DataFrame(rows, columns=columns)

    @property
    def events_ready(self) -> bool:
        """Whether :meth:`cms_events` is cached (so calling it costs nothing)."""
        return self._events is not None

    def to_csv(self, path: str | Path) -> Path:
        path = Path(path)
        self.per_token().to_csv(path, index=False)
        return path

    # ---- exact states -----------------------------------------------------------------------
    def _check_token(self, t: int) -> int:
        if not -1 <= int(t) < self.n_tokens:
            raise IndexError(f"token {t} is outside this recording (0..{self.n_tokens - 1}, or -1 for the start)")
        return int(t)

    def memory_matrices(self, layer: int) -> tuple[str, ...]:
        """The layer's fast weight matrices by name: ("memory",) for M, or with ``memory_depth`` 2
        ("memory", "hidden_memory") for W1 (values x hidden) and W2 (hidden x keys)."""
        return tuple(name for name in MATRICES if self.has_memory_stream(layer, f"initial.{name}"))

    def matrix_factors(self, layer: int, matrix: str = "memory") -> dict[str, torch.Tensor]:
        """What rebuilds one of the layer's matrices (:func:`reconstruction.rebuild_memory`'s names): each is
        W_t = A + a_t (W_{t-1} - A) + u_t k_t^T (A = 0 for the linear memory), its keys and writes [T, H, .]."""
        if matrix not in self.memory_matrices(layer):
            raise KeyError(f"layer {layer} has no recorded {MATRICES.get(matrix, repr(matrix))}")
        if matrix == "memory" and not self.has_memory_stream(layer, "anchor.memory"):  # the linear memory
            return {name: self.memory_stream(layer, name) for name in MEMORY_FACTORS if self.has_memory_stream(layer, name)}
        keys, writes = ("hidden", "writes") if matrix == "memory" else ("keys", "hidden_writes")
        pick = lambda name: self.memory_stream(layer, name)
        factors = {"keys": pick(keys), "writes": pick(writes), "retention": pick("retention"),
                   "initial.memory": pick(f"initial.{matrix}"), "anchor": pick(f"anchor.{matrix}")}
        if self.has_memory_stream(layer, "momentum_gate"):  # each matrix has its own momentum
            factors.update({"momentum_gate": pick("momentum_gate"),
                            "initial.momentum": pick("initial.momentum" if matrix == "memory" else "initial.hidden_momentum")})
        return factors

    def memory_matrix(self, layer: int, head: int, t: int, matrix: str = "memory") -> torch.Tensor:
        """M_t of one head (after token t; t = -1 gives the memory before the first token). [d, dk] float64.
        ``matrix``: one of :meth:`memory_matrices` (depth 2: "memory" is W1 [d, d], "hidden_memory" W2 [d, dk])."""
        t = self._check_token(t)
        if not self.has_memory_stream(layer, "initial.memory"):
            raise KeyError(f"layer {layer} has no recorded memory")
        if not 0 <= head < self.config.n_memory_heads:
            raise IndexError(f"head {head} is outside this model (0..{self.config.n_memory_heads - 1})")
        if streams.full_memory(layer, matrix) in self.tensors and t >= 0:
            return self.tensors[streams.full_memory(layer, matrix)][t, head].double()
        return rebuild_memory(self.matrix_factors(layer, matrix), head, t)

    def read_memory(self, layer: int, head: int, t: int, tokens) -> torch.Tensor:
        """M_t(k_s): what the memory after token t returns for the keys of ``tokens`` (indices or a slice of this
        run), [n, d] float64. The linear memory: M_t k_s; the 2-layer one: r(k_s) + W1_t silu(W2_t k_s), r the
        unit key before the key feature map (the residual the model adds)."""
        keys = self.memory_stream(layer, "keys")[tokens, head].double()
        if len(self.memory_matrices(layer)) == 1:
            return keys @ self.memory_matrix(layer, head, t).T
        if self.has_memory_stream(layer, "unit_keys"):
            residual = self.memory_stream(layer, "unit_keys")[tokens, head].double()
        elif self.config.key_expansion == 1:  # phi is then only l2norm, which the unit key already had
            residual = keys
        else:
            raise KeyError(f"layer {layer} was recorded with its keys in place of the unit keys: the 2-layer memory's "
                           "residual cannot be rebuilt from them")
        w1, w2 = (self.memory_matrix(layer, head, t, m) for m in ("memory", "hidden_memory"))
        return residual + torch.nn.functional.silu(keys @ w2.T) @ w1.T

    def memory_delta(self, layer: int, head: int, t: int, matrix: str = "memory") -> torch.Tensor:
        """M_t - M_{t-1}: what token t wrote (including what retention removed)."""
        return self.memory_matrix(layer, head, t, matrix) - self.memory_matrix(layer, head, t - 1, matrix)

    def cms_weights(self, layer: int, level: int, t: int) -> torch.Tensor:
        """Fast weights of a CMS level after token t (what token t+1 reads); t = -1 gives the initial ones.
        [D, h] float32, replayed exactly from the layer's recorded CMS input, initial state and parameters
        (from a cached checkpoint at most 31 tokens before t: scrubbing stays fast)."""
        return self.cms_replay(layer).weights(self._check_token(t))[level]

    def cms_replay(self, layer: int) -> CMSReplay | LMUpdatesReplay:
        """The layer's checkpointed CMS replay (lm levels: their recorded updates). Only the last layer asked
        for is kept: a replay of a long run holds tens of MB of checkpoints, and a dashboard session scrubs
        one layer at a time."""
        if streams.cms(layer, "input") not in self.tensors:
            raise KeyError(f"layer {layer} has no recorded CMS")
        if layer not in self._replays:
            self._replays.clear()
            self._replays[layer] = LMUpdatesReplay(self, layer) if self.cms_learns_from_loss else CMSReplay(self, layer)
        return self._replays[layer]

    def cms_chain(self, layer: int) -> tuple[ContinuumMemorySystem, list[CMSLevelState]]:
        """The layer's CMS module (with the recorded parameters) and its level states before token 0."""
        prefix = streams.cms(layer, "")
        if prefix + "input" not in self.tensors:
            raise KeyError(f"layer {layer} has no recorded CMS")
        config = self.config
        cms = ContinuumMemorySystem(config.d_model, config.cms_hidden, config.cms_periods)
        cms.load_state_dict({k[len(prefix + "params."):]: v for k, v in self.tensors.items() if k.startswith(prefix + "params.")})
        initial = lambda j, n: self.tensors[f"{prefix}initial.{j}.{n}"]
        states = [CMSLevelState(initial(j, "memory")[None, None], initial(j, "pending")[None, None],
                                initial(j, "previous_input")[None]) for j in range(len(config.cms_periods))]
        return cms, states

    def _replay_cms(self, layer: int, trace: bool = False) -> tuple[list[CMSLevelState], CMSTrace | None]:
        """Run the layer's CMS chain over every recorded token: the level states after the last one and,
        with ``trace``, every level's write pairs (None with no tokens)."""
        cms, states = self.cms_chain(layer)
        if self.n_tokens == 0:  # a loaded file may hold no tokens; the chain cannot run on an empty input
            return states, None
        with torch.no_grad():
            _, states, pairs = cms(self.tensors[streams.cms(layer, "input")][None], states, self.start_position,
                                   self.ablation, trace)
        return states, pairs

    # ---- runs read in pieces -------------------------------------------------------------------
    @classmethod
    def join(cls, parts: list["Recording"], text: str | None = None) -> "Recording":
        """One recording of consecutive runs, each continuing the state the one before left (recorded
        with ``next_token`` so no loss is missing at a seam). Per-token streams are concatenated; the
        initial states, anchors and CMS parameters are the first part's, from which every later matrix is rebuilt."""
        if not parts:
            raise RecordingError("nothing to join")
        first = parts[0]
        for before, after in zip(parts, parts[1:]):
            if after.start_position != before.start_position + before.n_tokens:
                raise RecordingError(f"recordings to join must be consecutive: one ends at stream position "
                                     f"{before.start_position + before.n_tokens}, the next starts at {after.start_position}")
            if after.config != first.config or after.ablation != first.ablation or after.tensors.keys() != first.tensors.keys():
                raise RecordingError("recordings to join must come from one model, ablation and set of streams")
        if any(name.endswith("attention.weights") for name in first.tensors):
            raise RecordingError("recordings with attention weights cannot be joined")
        per_token = lambda name: (row := streams.find(name)[0]).shape is not None and row.shape[0] in ("T", "U")
        # an lm level's update tokens count from each part's start: from the first's once joined
        offsets = [sum(part.n_tokens for part in parts[:k]) for k in range(len(parts))]
        shifted = lambda name, k: parts[k].tensors[name] + offsets[k] if name.endswith(".tokens") else parts[k].tensors[name]
        tensors = {name: torch.cat([shifted(name, k) for k in range(len(parts))]) if per_token(name) else tensor
                   for name, tensor in first.tensors.items()}
        meta = {**first.meta, "pieces": len(parts)}
        if all("forward_seconds" in part.meta for part in parts):
            meta["forward_seconds"] = round(sum(part.meta["forward_seconds"] for part in parts), 4)
        return cls(first.config, tensors, text, first.ablation, first.start_position, meta)

    # ---- files ------------------------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        from .files import save_recording
        return save_recording(self, path)

    @classmethod
    def load(cls, source) -> "Recording":
        from .files import load_recording
        return load_recording(source)
