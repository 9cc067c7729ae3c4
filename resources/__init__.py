"""RadLens resources (models, icons, theme), installed as the package ``radlens_resources``."""
