"""The names a user can choose from, each defined once (no torch: the CLI's --help reads them)."""

from __future__ import annotations

from enum import Enum

from .errors import UsageError


class Choice(str, Enum):
    """A str Enum whose str() is its value, so messages and JSON show "ddim", not "Sampler.ddim"."""

    def __str__(self) -> str:
        return self.value

    @classmethod
    def names(cls) -> str:
        return ", ".join(m.value for m in cls)

    @classmethod
    def parse(cls, value: object, what: str):
        """The member for `value`, or a one-line UsageError naming the choices."""
        try:
            return cls(value)
        except ValueError:
            raise UsageError(f"{what} must be one of {cls.names()}, got {value!r}") from None


class Sampler(Choice):
    ddim = "ddim"
    dpmpp_2m = "dpmpp-2m"


class Task(Choice):
    t2v = "t2v"
    i2v = "i2v"
    inpaint = "inpaint"
    cinemagraph = "cinemagraph"
    edit = "edit"
    stylize = "stylize"
    extend = "extend"


class Stage(Choice):
    """Training stages, in the paper's order (see train.py)."""

    text = "text"
    t2i = "t2i"
    video = "video"
    video_unfrozen = "video-unfrozen"


class LoopStyle(Choice):
    """How a loop closes (README, Time). pingpong: the clip plays there and back, so every step of
    the loop, the wrap included, is a step of the clip. round: windows wrap around the end, so the
    motion may carry on through the seam; a prompt schedule's loop is made this way."""

    pingpong = "pingpong"
    round = "round"

    @classmethod
    def resolve(cls, value: object, *, scheduled: bool) -> LoopStyle:
        """The style for a loop: `value`, else pingpong, or round for a loop with a prompt schedule
        (played back, a schedule's later spans would come again in reverse)."""
        if value is None:
            return cls.round if scheduled else cls.pingpong
        style = cls.parse(value, "loop style")
        if style is cls.pingpong and scheduled:
            raise UsageError("a pingpong loop plays the clip back, which a prompt schedule cannot: "
                             "use --loop-style round")
        return style


class Format(Choice):
    mp4 = "mp4"
    gif = "gif"
    webp = "webp"
    png = "png"  # a folder of numbered PNG frames


class DisplayFilter(Choice):
    """How a clip is enlarged for viewing: nearest keeps the model's pixels crisp."""

    nearest = "nearest"
    lanczos = "lanczos"


class Device(Choice):
    auto = "auto"
    cpu = "cpu"
    cuda = "cuda"


class Layouts(Choice):
    """The <C, M> layouts a video stage trains with (masks.LAYOUT_SETS holds their shares)."""

    standard = "standard"
    time = "time"
