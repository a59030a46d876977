"""The memories: fast weights written while the model reads.

    associative.py        Hebbian and delta-rule associative memory, on its own
    delta_memory.py       DeltaRuleMemory: a gated delta-rule layer with static projections (the model's
                          memory with Hope's additions off: its tested reference)
    self_modifying.py     SelfModifyingMemory: the Hope layer's test-time memory (surprise-driven rate)
    projection_memory.py  the self-modifying key/value/gate projection memories it uses
    cms.py                the Continuum Memory System: levels updating every 1, 2, 4, 8 ... tokens

They read the config, the ablation, the state dataclasses and the small layers of the package and run
on the kernels in ``ops``; the model composes them. None imports the model.
"""
from .associative import AssociativeMemory
from .cms import CMSLevel, ContinuumMemorySystem
from .delta_memory import DeltaRuleMemory
from .self_modifying import SelfModifyingMemory

__all__ = ["AssociativeMemory", "CMSLevel", "ContinuumMemorySystem", "DeltaRuleMemory", "SelfModifyingMemory"]
