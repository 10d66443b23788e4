"""Filters: each turns evidence about a message into symbols (see filters.base)."""
