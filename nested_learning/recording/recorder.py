"""record(): run the model once and capture, inside its own step, everything the dashboard shows.

A self-modifying model cannot be re-run to recover what happened, so the recorder asks the layers
to hand out their internals during the one forward pass (``HopeOutput.trace``) and keeps compact
factors from which every memory matrix is rebuilt exactly afterwards.
"""
from __future__ import annotations

import dataclasses
import platform
import time

import torch
import torch.nn.functional as F

from .. import __version__
from ..ablation import Ablation
from ..model import IGNORE, HopeTransformer
from ..ops import key_feature_map
from ..state import HopeState
from ..tokenizer import ByteTokenizer
from ..trace import CMSTrace, MemoryTrace
from . import streams
from .recording import Recording, RecordingError
from .reconstruction import anchored_norms, memory_norms, momentum_norms, replay

DEFAULT_MAX_TOKENS = 4096


def _tokens(model: HopeTransformer, text_or_tokens, max_tokens: int) -> tuple[torch.Tensor, str | None]:
    if isinstance(text_or_tokens, str):
        n = len(text_or_tokens.encode("utf-8", errors="replace"))
        if n > max_tokens:  # refuse before allocating anything
            raise RecordingError(f"input is {n} tokens (bytes); the limit is {max_tokens}")
        return torch.tensor(ByteTokenizer().encode(text_or_tokens), dtype=torch.long), text_or_tokens
    tokens = torch.as_tensor(text_or_tokens)
    if tokens.dim() == 2 and tokens.shape[0] == 1:
        tokens = tokens[0]
    if tokens.dim() != 1 or tokens.is_floating_point():
        raise RecordingError(f"tokens must be a 1-D sequence of integer ids, got shape {tuple(tokens.shape)}")
    if tokens.numel() > max_tokens:
        raise RecordingError(f"input is {tokens.numel()} tokens; the limit is {max_tokens}")
    if tokens.numel() and (int(tokens.min()) < 0 or int(tokens.max()) >= model.config.vocab_size):
        raise RecordingError(f"token ids must be in [0, {model.config.vocab_size})")
    return tokens.long(), None


def record(model: HopeTransformer, text_or_tokens, state: HopeState | None = None, ablation: Ablation | None = None,
           *, top_k: int = 5, attention: bool = False, full_states: bool = False,
           max_tokens: int = DEFAULT_MAX_TOKENS, next_token: int | None = None) -> tuple[Recording, HopeState]:
    """Run ``model`` on one sequence and return (recording, state after the last token).

    ``state`` continues an earlier stream (the recording starts at ``state.position``). ``attention``
    keeps the attention weights; ``full_states`` stores every memory matrix M_t in float16 as well.
    ``next_token``, the token that follows in the stream (a run read in pieces), gives the last token
    its loss; without it that loss is NaN.
    """
    if not 1 <= top_k <= model.config.vocab_size:
        raise RecordingError(f"top_k must be in [1, {model.config.vocab_size}], got {top_k}")
    tokens, text = _tokens(model, text_or_tokens, max_tokens)
    if tokens.numel() == 0:
        raise RecordingError("nothing to record: the input is empty")
    ablation = ablation or Ablation()
    state = (state if state is not None else model.init_state(1)).detach()
    if next_token is not None and not 0 <= int(next_token) < model.config.vocab_size:
        raise RecordingError(f"next_token must be in [0, {model.config.vocab_size})")
    if state.batch_size not in (None, 1):
        raise RecordingError("a recording follows one sequence: pass a state with batch size 1")
    # inference_mode, like the model's own no_grad path: no autograd bookkeeping for the forward's
    # thousands of small ops. Its tensors could be neither modified in place nor used by autograd
    # later, so the recording and the state are handed out as ordinary copies (a few MB). An lm model's
    # levels take gradients of the text's next-token loss: it needs autograd, so no_grad.
    lm = model.config.cms_objective == "lm" and bool(model.config.cms_periods)
    with torch.no_grad() if lm else torch.inference_mode():
        recording, new_state = _record(model, tokens, text, state, ablation, top_k, attention, full_states, next_token)
    return (dataclasses.replace(recording, tensors={name: t.clone() for name, t in recording.tensors.items()}),
            new_state.clone())


def _record(model, tokens, text, state, ablation, top_k, attention, full_states, next_token):
    started = time.perf_counter()
    targets = None
    if model.config.cms_objective == "lm" and model.config.cms_periods:  # its levels learn from the text it reads
        last = torch.tensor([IGNORE if next_token is None else int(next_token)])
        targets = torch.cat([tokens[1:], last])[None].to(model.device)
    out = model(tokens[None].to(model.device), state=state, ablation=ablation, trace=True, trace_attention=attention,
                targets=targets)
    forward_seconds = time.perf_counter() - started
    tensors = _token_streams(out.logits[0].float().cpu(), tokens, top_k, next_token)
    for i, layer_trace in enumerate(out.trace.layers):
        layer_state = state.layers[i]
        if layer_trace.memory is not None and layer_trace.memory.hidden is not None:
            tensors.update(_deep_memory_streams(i, layer_trace.memory, layer_state.memory, model.blocks[i].memory,
                                                full_states, model.config.key_expansion))
        elif layer_trace.memory is not None:
            tensors.update(_memory_streams(i, layer_trace.memory, layer_state.memory, full_states, model.config.key_expansion))
        if layer_trace.cms is not None:
            tensors.update(_cms_streams(i, layer_trace.cms, layer_state.cms, model.blocks[i].cms))
        if layer_trace.attention_weights is not None:
            tensors[streams.attention_weights(i)] = layer_trace.attention_weights[0].float().cpu()
    meta = {"torch": torch.__version__, "nested_learning": __version__, "python": platform.python_version(),
            "device": str(model.device), "top_k": top_k, "forward_seconds": round(forward_seconds, 4),
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    if model.checkpoint_metadata is not None:
        meta["checkpoint"] = model.checkpoint_metadata
    recording = Recording(model.config, tensors, text, ablation, state.position, meta)
    return recording, out.state


def _token_streams(logits: torch.Tensor, tokens: torch.Tensor, top_k: int, next_token: int | None) -> dict[str, torch.Tensor]:
    targets = tokens[1:] if next_token is None else torch.cat([tokens[1:], tokens.new_tensor([int(next_token)])])
    loss = torch.full((tokens.numel(),), float("nan"))
    if targets.numel():  # next-token loss: position t predicts token t+1
        loss[:targets.numel()] = F.cross_entropy(logits[:targets.numel()], targets, reduction="none")
    probs, ids = logits.softmax(-1).topk(top_k, dim=-1)
    return {"tokens": tokens, "loss": loss, "topk.ids": ids, "topk.probs": probs}


def _memory_streams(layer: int, trace: MemoryTrace, initial_state, full_states: bool, key_expansion: int) -> dict[str, torch.Tensor]:
    take = lambda name: getattr(trace, name)[0].transpose(0, 1).float().cpu()  # [H, T, ...] -> [T, H, ...]
    prefix = streams.memory(layer, "")
    out = {prefix + n: take(n) for n in ("surprise", "gate_surprise", "learning_rate", "retention")}
    keys = take("keys")
    out.update(_key_factor(prefix, keys, take("unit_keys"), key_expansion))
    errors, values = take("errors"), take("values")
    out[prefix + "errors"] = errors  # readers rebuild the writes (lr_t e_t, as below) and the values from them
    if trace.write_rate is not None:  # damped momentum: lr_t (1 - beta_t) enters the momentum
        out[prefix + "write_rate"] = take("write_rate")
    writes = errors * out.get(prefix + "write_rate", out[prefix + "learning_rate"])[..., None]  # u_t = rate_t * error_t
    initial = initial_state.memory[0].float().cpu()
    out[prefix + "initial.memory"] = initial
    if trace.momentum_gate is not None:
        out[prefix + "momentum_gate"] = take("momentum_gate")
        momentum = initial_state.momentum[0].float().cpu()
        out[prefix + "initial.momentum"] = momentum
        out[prefix + "values"] = values  # errors against the chunk-start memory: the values cannot be rebuilt
        norms, deltas = momentum_norms(initial, momentum, keys, writes, out[prefix + "retention"],
                                       out[prefix + "momentum_gate"])
    else:  # M_{t-1} k_t = v_t - error_t
        norms, deltas = memory_norms(initial, keys, writes, values - errors, out[prefix + "retention"])
    out[prefix + "memory_norm"], out[prefix + "write_norm"] = norms.float(), deltas.float()
    if full_states:  # every M_t, float16: 2 d dk bytes per head per token
        full = replay(initial, keys, writes, out[prefix + "retention"], out.get(prefix + "momentum_gate"),
                      out.get(prefix + "initial.momentum"))
        out[streams.full_memory(layer)] = torch.stack(list(full)).half()
    return out


def _deep_memory_streams(layer: int, trace: MemoryTrace, initial_state, module, full_states: bool,
                         key_expansion: int) -> dict[str, torch.Tensor]:
    """memory_depth 2: M(x) = r(x) + W1 silu(W2 x). Each matrix's offset from its anchor (the learned initial
    weights retention pulls toward) is a gated-delta memory, W1 written rho e a^T and W2 rho d k^T: the
    recording keeps the error e, the hidden a and its error d (all at the chunk start's weights), the rate
    rho, the values (the errors are not against the weights before the write, so they cannot rebuild them)
    and the starting weights and anchors; with momentum, its gate and both starting momenta."""
    take = lambda name: getattr(trace, name)[0].transpose(0, 1).float().cpu()  # [H, T, ...] -> [T, H, ...]
    prefix = streams.memory(layer, "")
    out = {prefix + n: take(n) for n in ("surprise", "gate_surprise", "learning_rate", "retention", "write_rate",
                                         "errors", "values", "hidden", "hidden_errors")}
    keys = take("keys")
    out.update(_key_factor(prefix, keys, take("unit_keys"), key_expansion))
    rate = out[prefix + "write_rate"][..., None]
    matrices = {"memory": (initial_state.memory, module.initial_memory, out[prefix + "hidden"], out[prefix + "errors"] * rate,
                           initial_state.momentum, "initial.momentum"),
                "hidden_memory": (initial_state.hidden_memory, module.initial_hidden_memory, keys,
                                  out[prefix + "hidden_errors"] * rate, initial_state.hidden_momentum, "initial.hidden_momentum")}
    gate = None
    if trace.momentum_gate is not None:
        gate = out[prefix + "momentum_gate"] = take("momentum_gate")
    for name, (start, anchor, matrix_keys, writes, momentum, momentum_name) in matrices.items():
        start, anchor = start[0].float().cpu(), anchor.detach().float().cpu()
        out[prefix + f"initial.{name}"], out[prefix + f"anchor.{name}"] = start, anchor
        if gate is not None:
            momentum = out[prefix + momentum_name] = momentum[0].float().cpu()
            norms, deltas = momentum_norms(start, momentum, matrix_keys, writes, out[prefix + "retention"], gate, anchor)
        else:
            norms, deltas = anchored_norms(start, anchor, matrix_keys, writes, out[prefix + "retention"])
        out[prefix + f"{name}_norm"], out[prefix + ("write_norm" if name == "memory" else "hidden_write_norm")] = \
            norms.float(), deltas.float()
        if full_states:  # every W_t, float16
            full = replay(start - anchor, matrix_keys, writes, out[prefix + "retention"], gate,
                          None if gate is None else momentum)
            out[streams.full_memory(layer, name)] = (torch.stack(list(full)) + anchor.double()).half()
    return out


def _key_factor(prefix: str, keys: torch.Tensor, unit_keys: torch.Tensor, key_expansion: int) -> dict[str, torch.Tensor]:
    """The unit keys [T, H, d] when phi (parameter-free) rebuilds from them the very keys [T, H, dk] the memory
    used (key_expansion x fewer bytes; so on CPU in float32), else the keys (a GPU's or bf16's rounding)."""
    unit_keys = unit_keys.contiguous()  # laid out as a loaded file holds them: checked on what readers rebuild from
    if torch.equal(key_feature_map(unit_keys, key_expansion), keys):
        return {prefix + "unit_keys": unit_keys}
    return {prefix + "keys": keys}


def _cms_streams(layer: int, trace: CMSTrace, initial_levels, cms_module) -> dict[str, torch.Tensor]:
    """The chain's input, initial states and parameters: enough to replay every level exactly
    (update events are derived from that replay on demand, which keeps recording cheap)."""
    prefix = streams.cms(layer, "")
    out = {prefix + "input": trace.input[0].float().cpu()}
    for name, p in cms_module.state_dict().items():
        out[f"{prefix}params.{name}"] = p.detach().float().cpu().clone()
    for j, level_state in enumerate(initial_levels):
        out[f"{prefix}initial.{j}.memory"] = level_state.memory[0, 0].float().cpu()
        out[f"{prefix}initial.{j}.pending"] = level_state.pending[0, 0].float().cpu()
        out[f"{prefix}initial.{j}.previous_input"] = level_state.previous_input[0].float().cpu()
    for j, updates in enumerate(trace.updates):  # lm levels: W after each update (none for a level off)
        out[f"{prefix}updates.{j}.tokens"] = updates.tokens.cpu()
        out[f"{prefix}updates.{j}.memory"] = updates.memory[0].float().cpu()
    return out
