"""Nested Learning / Hope in PyTorch: test-time-learning memories, the Continuum Memory System and
the Hope Transformer, with explicit state so inference never touches the learned parameters."""
from .ablation import Ablation
from .checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from .config import PRESETS, HopeConfig
from .device import resolve_device
from .memories import AssociativeMemory, CMSLevel, ContinuumMemorySystem, DeltaRuleMemory, SelfModifyingMemory
from .model import Generation, HopeOutput, HopeTransformer
from .state import HopeState
from .tokenizer import ByteTokenizer

__version__ = "0.1.0"
__all__ = [
    "Ablation", "AssociativeMemory", "ByteTokenizer", "CheckpointError", "CMSLevel", "ContinuumMemorySystem",
    "DeltaRuleMemory", "Generation", "HopeConfig", "HopeOutput", "HopeState", "HopeTransformer", "PRESETS",
    "SelfModifyingMemory", "load_checkpoint", "resolve_device", "save_checkpoint",
]
