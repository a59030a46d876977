"""Helpers shared by tests (and by bench/, which may import them); no tests here."""
