"""Qt only: draws and forwards events; no parsing, no torch."""
