"""Nested Learning / Hope in PyTorch: test-time-learning memories, the Continuum Memory System and
the Hope Transformer, with explicit state so inference never touches the learned parameters."""
from .ablation import Ablation
from .associative import AssociativeMemory
from .checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from .cms import CMSLevel, ContinuumMemorySystem
from .config import PRESETS, HopeConfig
from .delta_memory import DeltaRuleMemory
from .device import resolve_device
from .model import Generation, HopeOutput, HopeTransformer
from .self_modifying import SelfModifyingMemory
from .state import HopeState
from .tokenizer import ByteTokenizer

__version__ = "0.1.0"
__all__ = [
    "Ablation", "AssociativeMemory", "ByteTokenizer", "CheckpointError", "CMSLevel", "ContinuumMemorySystem",
    "DeltaRuleMemory", "Generation", "HopeConfig", "HopeOutput", "HopeState", "HopeTransformer", "PRESETS",
    "SelfModifyingMemory", "load_checkpoint", "resolve_device", "save_checkpoint",
]
