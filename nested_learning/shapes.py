"""Parameter names and shapes of a HopeTransformer, computed from its config by arithmetic alone.

The checkpoint and recording loaders compare an untrusted file against these before any module is
built, so a config that claims a huge model costs a few dictionary entries, not a model. The tests
check them against real models of every preset (tests/test_checkpoint.py).
"""
from __future__ import annotations

from .config import HopeConfig
from .memories.projection_memory import N_PROJECTIONS

Shapes = dict[str, tuple[int, ...]]


def cms_parameter_shapes(config: HopeConfig) -> Shapes:
    """The parameters of one layer's ContinuumMemorySystem, named as in its state_dict."""
    D, h = config.d_model, config.cms_hidden
    shapes: Shapes = {}
    for j in range(len(config.cms_periods)):
        shapes.update({f"levels.{j}.initial_memory": (D, h), f"levels.{j}.lr_logit": (),
                       f"levels.{j}.retention_logit": (), f"levels.{j}.key_proj.weight": (h, D)})
    return shapes


def block_parameter_shapes(config: HopeConfig) -> Shapes:
    """The parameters of one HopeBlock (every block has the same)."""
    D = config.d_model
    shapes: Shapes = {}
    if config.attention:
        if config.n_persistent_tokens:
            shapes["attention.persistent"] = (config.n_persistent_tokens, D)
        shapes.update({"attention.qkv.weight": (3 * D, D), "attention.out.weight": (D, D)})
    if config.memory:
        H, d = config.n_memory_heads, config.memory_head_dim
        n_gates = (3 if config.momentum else 2) * H
        deep = config.memory_depth > 1  # the MLP memory: W1 [H, d, d] and W2 [H, d, dk]
        shapes.update({"memory.surprise_weight": (H,), "memory.initial_memory": (H, d, d if deep else config.memory_key_dim),
                       "memory.in_proj.weight": ((3 + config.self_modifying - config.shifted_keys) * D, D)})
        if deep:
            shapes["memory.initial_hidden_memory"] = (H, d, config.memory_key_dim)
        if config.shifted_keys:
            shapes["memory.initial_query"] = (D,)
        if config.local_conv > 1:  # width 1 is no conv
            shapes["memory.conv.weight"] = ((3 - config.shifted_keys) * D, config.local_conv)
        if config.self_modifying:
            hidden = config.projection_hidden
            shapes.update({"memory.projections.initial_in": (N_PROJECTIONS, hidden, D),
                           "memory.projections.initial_out": (N_PROJECTIONS, D, hidden)})
        shapes.update({"memory.gates.weight": (n_gates, D), "memory.gates.bias": (n_gates,),
                       "memory.out_norm.weight": (d,), "memory.out_proj.weight": (D, D)})
    if config.cms_periods:
        shapes.update({f"cms.{name}": shape for name, shape in cms_parameter_shapes(config).items()})
    if config.ffn:
        hidden = config.ffn_mult * D * 2 // 3  # SwiGLU keeps the parameter count of a mult x MLP
        shapes.update({"ffn.gate_up.weight": (2 * hidden, D), "ffn.down.weight": (D, hidden)})
    present = {"attention": config.attention, "memory": config.memory, "cms": bool(config.cms_periods), "ffn": config.ffn}
    shapes.update({f"norms.{name}.weight": (D,) for name, on in present.items() if on})
    return shapes


def parameter_shapes(config: HopeConfig) -> Shapes:
    """Every parameter of the model as ``named_parameters()`` lists it (the tied lm_head once, as embed)."""
    block = block_parameter_shapes(config)
    shapes: Shapes = {"embed.weight": (config.vocab_size, config.d_model)}
    for i in range(config.n_layers):
        shapes.update({f"blocks.{i}.{name}": shape for name, shape in block.items()})
    shapes["final_norm.weight"] = (config.d_model,)
    return shapes
