"""RadLens: a desktop radiology viewer with an in-process AI engine."""

__version__ = "0.1.0"
