"""The per-domain rule language: parse, compile, evaluate, with safe regexes."""
