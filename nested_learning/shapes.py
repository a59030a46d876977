"""Parameter names and shapes of a HopeTransformer, read from the model itself built on the meta device.

The checkpoint and recording loaders compare an untrusted file against these before any real module is
built. On the meta device a module has shapes but no storage, so the shapes cannot drift from the
modules (they are the modules'), and a config that claims a huge model costs building one layer of it
(the blocks are identical; ``n_layers`` only repeats the names), never its memory.
"""
from __future__ import annotations

import dataclasses

import torch
from torch.overrides import TorchFunctionMode

from .config import HopeConfig
from .memories.cms import ContinuumMemorySystem
from .model import HopeBlock, HopeTransformer

Shapes = dict[str, tuple[int, ...]]
_RANDOM = frozenset({"rand", "randn"})
_SCALAR_ARITHMETIC = frozenset({"add", "sub", "mul", "div", "__add__", "__radd__", "__sub__", "__rsub__", "__mul__",
                                "__rmul__", "__truediv__"})


class _ShapesOnly(TorchFunctionMode):
    """A meta build without the work that cannot change a shape: in-place fills (the initialisers),
    random draws and scalings by a number. On the meta device torch runs those through Python reference
    kernels whose first use imports some 800 modules (seconds); a factory call needs none of them."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = getattr(func, "__name__", "")
        if name.endswith("_") and not name.endswith("__"):  # in place: the target keeps its shape
            return args[0] if args else kwargs["tensor"]
        if name in _RANDOM:
            kwargs.pop("generator", None)
            return torch.empty(*args, **kwargs)
        if name in _SCALAR_ARITHMETIC and len(args) == 2 and isinstance(args[1], (int, float)):
            return args[0]
        return func(*args, **kwargs)


def _shapes(build) -> Shapes:
    with torch.device("meta"), _ShapesOnly():
        module = build()
    return {name: tuple(p.shape) for name, p in module.named_parameters()}


def cms_parameter_shapes(config: HopeConfig) -> Shapes:
    """The parameters of one layer's ContinuumMemorySystem, named as in its state_dict."""
    return _shapes(lambda: ContinuumMemorySystem(config.d_model, config.cms_hidden, config.cms_periods))


def block_parameter_shapes(config: HopeConfig) -> Shapes:
    """The parameters of one HopeBlock (every block has the same)."""
    return _shapes(lambda: HopeBlock(config))


def parameter_shapes(config: HopeConfig) -> Shapes:
    """Every parameter of the model as ``named_parameters()`` lists it (the tied lm_head once, as embed)."""
    one_layer = _shapes(lambda: HopeTransformer(dataclasses.replace(config, n_layers=1)))
    block = {name[len("blocks.0."):]: shape for name, shape in one_layer.items() if name.startswith("blocks.0.")}
    shapes: Shapes = {"embed.weight": one_layer.pop("embed.weight")}
    for i in range(config.n_layers):
        shapes.update({f"blocks.{i}.{name}": shape for name, shape in block.items()})
    shapes.update({name: shape for name, shape in one_layer.items() if not name.startswith("blocks.")})
    return shapes
