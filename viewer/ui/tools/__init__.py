"""Annotation tools: one small state machine per tool, plugged into the annotation tool bar."""
