"""Memory kernels: chunk-wise exact forms and the per-token oracles they are tested against."""
from .block_delta import BlockDeltaResult, block_delta_rule, block_delta_rule_reference
from .common import dpfp, key_feature_map, l2norm, segment_sum
from .deep_memory import DeepMemoryResult, deep_memory_chunk, mlp_read, reference_pass
from .gated_delta import DeltaRuleResult, gated_delta_chunk, gated_delta_rule, gated_delta_rule_reference
from .momentum import MomentumResult, momentum_rule_chunk, momentum_rule_reference

__all__ = [
    "BlockDeltaResult", "block_delta_rule", "block_delta_rule_reference",
    "dpfp", "key_feature_map", "l2norm", "segment_sum",
    "DeepMemoryResult", "deep_memory_chunk", "mlp_read", "reference_pass",
    "DeltaRuleResult", "gated_delta_chunk", "gated_delta_rule", "gated_delta_rule_reference",
    "MomentumResult", "momentum_rule_chunk", "momentum_rule_reference",
]
