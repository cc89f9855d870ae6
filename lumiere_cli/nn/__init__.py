"""Networks: the text-to-image U-Net, its Space-Time inflation (STUNet) and the text encoder.

`text` is not imported here: it pulls in open_clip, which is slow to import.
"""

from .stunet import STUNet, TemporalLayers
from .unet import UNet2D

__all__ = ["STUNet", "TemporalLayers", "UNet2D"]
