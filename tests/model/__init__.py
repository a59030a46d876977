"""Tests of the model: config, layers, state, memories, CMS, checkpoints."""
