"""Tests of data, the training loop, recipes, logging and many processes."""
