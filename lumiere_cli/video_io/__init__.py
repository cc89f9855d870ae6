"""Reading and writing images, videos and masks: the only package that touches codecs.

Arrays outside the library are uint8 (t, h, w, 3) for video, uint8 (h, w, 3) for an image and
float32 (h, w) or (t, h, w) in [0, 1] for a mask (white = 1 = generate, black = 0 = keep).

- `decode`: the user's files as arrays, and `fit_to_model`;
- `encode`: clips as mp4, gif, webp or a folder of PNG frames, atomically;
- `metadata`: the parameters stored inside a clip.
"""

from .decode import DEFAULT_FPS, IMAGE_SUFFIXES, VIDEO_SUFFIXES, fit_to_model, read_image, read_mask, read_video
from .encode import FORMATS, enlarge, sidecar_path, write_clip, write_sidecar
from .metadata import metadata_text, read_metadata

__all__ = [
    "DEFAULT_FPS", "FORMATS", "IMAGE_SUFFIXES", "VIDEO_SUFFIXES", "enlarge", "fit_to_model", "metadata_text",
    "read_image", "read_mask", "read_metadata", "read_video", "sidecar_path", "write_clip", "write_sidecar",
]
