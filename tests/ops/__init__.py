"""Tests of the chunk-wise kernels and the associative memories against their oracles."""
