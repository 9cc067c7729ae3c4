"""Synthetic phantoms generated from a seed (numpy only): the demo study and training data."""
