"""Reproduce the shipped demo models from synthetic phantoms (a developer tool, not the runtime)."""
