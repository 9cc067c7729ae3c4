"""Dock panels of the main window: series browser, layers, DICOM tags, problems."""
