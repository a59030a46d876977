"""Tests of the validation experiments, statistics, controls and suite."""
