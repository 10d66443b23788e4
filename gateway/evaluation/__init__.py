"""Offline effectiveness: corpora pushed through the real pipeline and scanner."""
