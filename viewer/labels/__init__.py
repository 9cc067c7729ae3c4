"""Qt-free and torch-free: what the user and the AI said about a series."""
