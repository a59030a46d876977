"""HopeTransformer: a stack of Hope blocks over byte tokens, with explicit state.

    x = x + Attention(norm(x))                       causal, rotary, optional window, persistent tokens
    x = x + SelfModifyingMemory(norm(x))             test-time learning
    x = x + CMS(norm(x)) - norm(x)                   the chain's residual levels, as one branch
    x = x + FFN(norm(x))
Each branch exists when the config has it and runs when the per-call Ablation allows it. A branch
switched off contributes nothing and leaves its state as it was.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn

from .ablation import Ablation
from .attention import CausalSelfAttention
from .cms import ContinuumMemorySystem
from .config import HopeConfig
from .device import resolve_device
from .layers import FeedForward, RMSNorm
from .self_modifying import SelfModifyingMemory
from .state import HopeState, LayerState

FULL = Ablation()


@dataclass
class HopeOutput:
    logits: torch.Tensor  # [B, T, vocab]
    state: HopeState


class HopeBlock(nn.Module):
    def __init__(self, config: HopeConfig):
        super().__init__()
        self.attention = CausalSelfAttention(config) if config.attention else None
        self.memory = SelfModifyingMemory(config) if config.memory else None
        self.cms = ContinuumMemorySystem(config.d_model, config.cms_hidden, config.cms_periods) if config.cms_periods else None
        self.ffn = FeedForward(config.d_model, config.ffn_mult) if config.ffn else None
        self.norms = nn.ModuleDict({name: RMSNorm(config.d_model) for name in ("attention", "memory", "cms", "ffn")
                                    if getattr(self, name) is not None})

    def init_state(self, batch_size: int, device, dtype) -> LayerState:
        return LayerState(
            attention=self.attention.init_cache(batch_size, device, dtype) if self.attention is not None else None,
            memory=self.memory.init_state(batch_size) if self.memory is not None else None,
            cms=self.cms.init_state(batch_size) if self.cms is not None else [])

    def forward(self, x, state: LayerState, position: int, ablation: Ablation, trace: dict | None = None,
                trace_attention: bool = False):
        attention_cache, memory_state, cms_state = state.attention, state.memory, state.cms
        if self.attention is not None and ablation.attention:
            y, attention_cache, weights = self.attention(self.norms["attention"](x), state.attention, position,
                                                         ablation.persistent_tokens,
                                                         return_weights=trace is not None and trace_attention)
            x = x + y
            if weights is not None:
                trace["attention.weights"] = weights
        if self.memory is not None and ablation.memory:
            memory_trace = {} if trace is not None else None
            y, memory_state = self.memory(self.norms["memory"](x), state.memory, position, ablation, memory_trace)
            x = x + y
            if trace is not None:
                trace["memory"] = memory_trace
        if self.cms is not None and ablation.cms:
            h = self.norms["cms"](x)
            cms_trace = {} if trace is not None else None
            # the chain's input only: the levels' write pairs (two dv-wide matmuls per level) are replayed
            # from it when wanted (Recording.cms_events), not paid for on every traced call
            y, cms_state = self.cms(h, state.cms, position, ablation, cms_trace, trace_levels=False)
            x = x + (y - h)
            if trace is not None:
                trace["cms"] = cms_trace
        if self.ffn is not None and ablation.ffn:
            x = x + self.ffn(self.norms["ffn"](x))
        return x, LayerState(attention_cache, memory_state, cms_state)


class HopeTransformer(nn.Module):
    def __init__(self, config: HopeConfig | None = None):
        super().__init__()
        self.config = config = config or HopeConfig()
        self.embed = nn.Embedding(config.vocab_size, config.d_model)
        self.blocks = nn.ModuleList(HopeBlock(config) for _ in range(config.n_layers))
        self.final_norm = RMSNorm(config.d_model)
        self.lm_head = nn.Linear(config.d_model, config.vocab_size, bias=False)
        self.lm_head.weight = self.embed.weight  # tied
        self._init_weights()

    def _init_weights(self):
        std = self.config.init_std
        for name, module in self.named_modules():
            if isinstance(module, nn.Linear) and not name.endswith("gates"):  # gates keep PyTorch's default init
                nn.init.normal_(module.weight, std=std)
            elif isinstance(module, nn.Embedding):
                nn.init.normal_(module.weight, std=std)
        for name, p in self.named_parameters():  # residual outputs scaled down with depth (GPT-2)
            if name.endswith(("out.weight", "out_proj.weight", "down.weight")):
                nn.init.normal_(p, std=std / (2 * self.config.n_layers) ** 0.5)

    @classmethod
    def from_preset(cls, name: str = "hope", device: str = "auto", seed: int | None = 0, **overrides) -> "HopeTransformer":
        if seed is not None:
            torch.manual_seed(seed)
        return cls(HopeConfig.preset(name, **overrides)).to(resolve_device(device))

    @property
    def device(self) -> torch.device:
        return self.embed.weight.device

    def init_state(self, batch_size: int = 1) -> HopeState:
        """The learned initial state (fast weights start from their meta-learned initial values)."""
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        dtype = self.embed.weight.dtype
        state = HopeState(0, [block.init_state(batch_size, self.device, dtype) for block in self.blocks])
        # Blocks build the state from views of the learned initial values; copy them so that no
        # state tensor shares storage with a parameter (autograd still reaches the parameters).
        return state.clone()

    def forward(self, tokens: torch.Tensor, state: HopeState | None = None, ablation: Ablation | None = None,
                trace: dict | None = None, trace_attention: bool = False) -> HopeOutput:
        """tokens [B, T] of byte ids -> logits [B, T, vocab] and the state after the last token.

        ``trace``: an optional dict the layers fill with per-token internals (used by the recorder):
        ``trace["layers"][i]`` holds "memory" (surprise, rates, keys, values, errors [B, H, T(, d)]),
        "cms" (the chain input, which replays every level exactly) and, with ``trace_attention``,
        "attention.weights" [B, H, T, keys].
        """
        ablation = ablation or FULL
        tokens = self._check_tokens(tokens)
        if not torch.is_grad_enabled() and trace is None and not torch.is_inference_mode_enabled():
            # Nothing here will be differentiated: run under inference_mode, which skips the view and
            # version bookkeeping of the memories' thousands of small ops (hope 4-7% faster here),
            # then copy the results out as normal tensors, so the caller may still modify them in place
            # or hand the state to a training call (inference tensors allow neither).
            with torch.inference_mode():
                out = self._forward(tokens, state, ablation, None, trace_attention)
            return HopeOutput(out.logits.clone(), out.state.clone())
        return self._forward(tokens, state, ablation, trace, trace_attention)

    def _forward(self, tokens: torch.Tensor, state: HopeState | None, ablation: Ablation, trace: dict | None,
                 trace_attention: bool) -> HopeOutput:
        B, T = tokens.shape
        if state is None:
            state = self.init_state(B)
        elif state.batch_size != B:
            raise ValueError(f"state holds {state.batch_size} sequences but tokens hold {B}")
        if T == 0:
            return HopeOutput(self.embed.weight.new_zeros(B, 0, self.config.vocab_size), state)
        x = self.embed(tokens)
        new_layers = []
        for i, (block, layer_state) in enumerate(zip(self.blocks, state.layers)):
            layer_trace = trace.setdefault("layers", {}).setdefault(i, {}) if trace is not None else None
            x, layer_state = block(x, layer_state, state.position, ablation, layer_trace, trace_attention)
            new_layers.append(layer_state)
        logits = self.lm_head(self.final_norm(x))
        return HopeOutput(logits, HopeState(state.position + T, new_layers))

    def _check_tokens(self, tokens) -> torch.Tensor:
        if not isinstance(tokens, torch.Tensor):
            tokens = torch.as_tensor(tokens, dtype=torch.long)
        if tokens.dim() == 1:
            tokens = tokens.unsqueeze(0)
        if tokens.dim() != 2:
            raise ValueError(f"tokens must have shape [batch, time], got {tuple(tokens.shape)}")
        if tokens.dtype not in (torch.long, torch.int32, torch.int64, torch.int16, torch.uint8):
            raise ValueError(f"tokens must be integer ids, got dtype {tokens.dtype}")
        if tokens.numel() and (int(tokens.min()) < 0 or int(tokens.max()) >= self.config.vocab_size):
            raise ValueError(f"token ids must be in [0, {self.config.vocab_size}), got {int(tokens.min())}..{int(tokens.max())}")
        return tokens.to(device=self.device, dtype=torch.long)
