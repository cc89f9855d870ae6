"""Reading and writing images, videos and masks: the only package that touches codecs.

Arrays outside the library are uint8 (t, h, w, 3) for video, uint8 (h, w, 3) for an image and
float32 (h, w) or (t, h, w) in [0, 1] for a mask (white = 1 = generate, black = 0 = keep).

- `decode`: the user's files as arrays (upright, 8-bit, sampled in time), `probe`, and `fit_to_model`;
- `encode`: clips as mp4, gif, webp or a folder of PNG frames, atomically;
- `audio`: the source's sound under an mp4 clip;
- `metadata`: the parameters stored inside a clip.
"""

from .audio import AudioSpan, has_audio
from .decode import (
    BACKGROUND,
    DEFAULT_FPS,
    IMAGE_SUFFIXES,
    VIDEO_SUFFIXES,
    MediaInfo,
    SamplingError,
    Video,
    fit_to_model,
    probe,
    read_image,
    read_mask,
    read_video,
)
from .encode import FORMATS, enlarge, sidecar_path, write_clip, write_sidecar
from .metadata import metadata_text, read_metadata

__all__ = [
    "BACKGROUND", "DEFAULT_FPS", "FORMATS", "IMAGE_SUFFIXES", "VIDEO_SUFFIXES", "AudioSpan", "MediaInfo",
    "SamplingError", "Video", "enlarge", "fit_to_model", "has_audio", "metadata_text", "probe", "read_image",
    "read_mask", "read_metadata", "read_video", "sidecar_path", "write_clip", "write_sidecar",
]
