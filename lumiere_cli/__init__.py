"""lumiere-cli: short videos from a Space-Time U-Net diffusion model, after Lumiere (2024)."""

__version__ = "0.1.0"
