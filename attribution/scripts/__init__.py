"""Lua scripts, loaded once from this package and called by name."""
