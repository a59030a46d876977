"""Shape contracts of the kernels and memories, checked at run time only when asked.

    @shapes(q="N C dk", k="N C dk", v="N C dv", memory="N dv dk", returns=("N C dv", "N C dv", "N dv dk"))

A spec names one axis per word: a name binds on first sight and must agree everywhere after it in the
same call (arguments and result), a number must match exactly, and a leading ``...`` takes any number
of leading axes. ``returns`` is a spec, or a tuple of them for a tuple result (a NamedTuple too), or a
dict of attribute specs for a dataclass (a state); a dict for an argument checks its attributes the same
way; None (or an argument or field that is None) is not checked; an int argument binds a one-word spec
(``batch_size="B"``).

Checking is switched on by the environment variable ``NESTED_LEARNING_CHECK_SHAPES=1`` when the package is
imported (tests/conftest.py sets it). Otherwise :func:`shapes` returns the function itself: production
pays nothing, not even a wrapper call.
"""
from __future__ import annotations

import functools
import inspect
import os

import torch

CHECKING = os.environ.get("NESTED_LEARNING_CHECK_SHAPES") == "1"


class ShapeError(ValueError):
    """A tensor whose shape breaks a function's declared contract."""


def shapes(returns=None, **arguments):
    """Declare the shapes of a function's tensor arguments and result (see the module docstring)."""
    def decorate(fn):
        if not CHECKING:
            return fn
        signature = inspect.signature(fn)
        unknown = set(arguments) - set(signature.parameters)
        if unknown:
            raise TypeError(f"{fn.__qualname__}: shape spec for unknown argument(s) {sorted(unknown)}")

        @functools.wraps(fn)
        def checked(*args, **kwargs):
            bound = signature.bind(*args, **kwargs)
            sizes: dict[str, int] = {}
            for name, spec in arguments.items():
                if name in bound.arguments:
                    _check(bound.arguments[name], spec, sizes, f"{fn.__qualname__}: argument {name!r}")
            result = fn(*args, **kwargs)
            _check(result, returns, sizes, f"{fn.__qualname__}: result")
            return result
        return checked
    return decorate


def _check(value, spec, sizes: dict[str, int], where: str) -> None:
    if spec is None or value is None:
        return
    if isinstance(spec, dict):
        for field, field_spec in spec.items():
            _check(getattr(value, field), field_spec, sizes, f"{where}.{field}")
    elif isinstance(spec, tuple):
        for i, (item, item_spec) in enumerate(zip(value, spec)):
            _check(item, item_spec, sizes, f"{where}[{i}]")
    elif isinstance(value, int) and not isinstance(value, bool):
        _axes(spec, (value,), sizes, where)
    elif isinstance(value, torch.Tensor):
        _axes(spec, tuple(value.shape), sizes, where)
    else:
        raise ShapeError(f"{where}: expected a tensor [{spec}], got {type(value).__name__}")


def _axes(spec: str, shape: tuple[int, ...], sizes: dict[str, int], where: str) -> None:
    words = spec.split()
    if words and words[0] == "...":
        words = words[1:]
        if len(shape) < len(words):
            raise ShapeError(f"{where}: shape {list(shape)} has fewer than the {len(words)} axes of [{spec}]")
        shape = shape[len(shape) - len(words):]
    elif len(shape) != len(words):
        raise ShapeError(f"{where}: shape {list(shape)} does not have the {len(words)} axes of [{spec}]")
    for word, size in zip(words, shape):
        expected = int(word) if word.isdigit() else sizes.setdefault(word, size)
        if size != expected:
            bound = ", ".join(f"{k}={v}" for k, v in sizes.items())
            raise ShapeError(f"{where}: shape {list(shape)} breaks [{spec}] at {word} = {expected} ({bound})")
