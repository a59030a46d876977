"""Training: data sources, packing, the loop (AdamW, truncated BPTT, DDP, resume), evaluation.

``python -m nested_learning train --help`` is the command line; :func:`train` with a
:class:`TrainConfig` is the same from Python.
"""
from .trainer import TrainConfig, learning_rate, train

__all__ = ["TrainConfig", "learning_rate", "train"]
