"""Tests of per-token recordings, their files and the record command."""
