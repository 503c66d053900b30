"""Background sources, one module per mode of ``BackgroundOptions.mode``:

    keep         keep.py         the source frame itself (reframed onto a blurred copy of itself)
    blur         blur.py         the source's background, person filled out, blurred
    color        color.py        one solid colour
    image        image.py        a picture file, fitted once
    video        video.py        a video file, looped, sampled by timestamp
    transparent  transparent.py  nothing: RGBA output

Each is a :class:`~pipeline.matting.backgrounds.base.Background`; :func:`create_background`
makes the one that ``opts.mode`` names for a canvas. A new mode is a new module here and
one entry in :data:`BACKGROUNDS`.
"""

from __future__ import annotations

from typing import Callable

from pipeline.errors import InvalidOption
from pipeline.matting.backgrounds.base import Background
from pipeline.matting.backgrounds.blur import BlurBackground
from pipeline.matting.backgrounds.color import ColorBackground, parse_color
from pipeline.matting.backgrounds.image import ImageBackground
from pipeline.matting.backgrounds.keep import KeepBackground
from pipeline.matting.backgrounds.transparent import TransparentBackground
from pipeline.matting.backgrounds.video import BackgroundVideo
from pipeline.matting.framing import Canvas
from pipeline.options import BackgroundOptions


def _keep(opts: BackgroundOptions, canvas: Canvas, color: tuple[int, int, int]) -> Background:
    return KeepBackground(canvas)


def _blur(opts: BackgroundOptions, canvas: Canvas, color: tuple[int, int, int]) -> Background:
    return BlurBackground(canvas.size, opts.blur)


def _color(opts: BackgroundOptions, canvas: Canvas, color: tuple[int, int, int]) -> Background:
    return ColorBackground(canvas.size, color)


def _image(opts: BackgroundOptions, canvas: Canvas, color: tuple[int, int, int]) -> Background:
    if not opts.image:
        raise InvalidOption("Background mode 'image' needs an image file.")
    return ImageBackground(opts.image, canvas.size, opts.image_fit, (opts.image_x, opts.image_y), color)


def _video(opts: BackgroundOptions, canvas: Canvas, color: tuple[int, int, int]) -> Background:
    if not opts.video:
        raise InvalidOption("Background mode 'video' needs a video file.")
    return BackgroundVideo(opts.video, canvas.size, opts.image_fit, (opts.image_x, opts.image_y), color)


def _transparent(opts: BackgroundOptions, canvas: Canvas, color: tuple[int, int, int]) -> Background:
    return TransparentBackground()


# mode -> maker(opts, canvas, parsed colour); the colour also fills the bars of "fit"
BACKGROUNDS: dict[str, Callable[[BackgroundOptions, Canvas, tuple[int, int, int]], Background]] = {
    "keep": _keep,
    "blur": _blur,
    "color": _color,
    "image": _image,
    "video": _video,
    "transparent": _transparent,
}


def create_background(opts: BackgroundOptions, canvas: Canvas) -> Background:
    """The background source of ``opts.mode`` for ``canvas`` (files are loaded or opened now)."""
    color = parse_color(opts.color)
    maker = BACKGROUNDS.get(opts.mode)
    if maker is None:
        raise InvalidOption(f"Background mode must be one of {', '.join(BACKGROUNDS)}, not {opts.mode!r}.")
    return maker(opts, canvas, color)


__all__ = [
    "BACKGROUNDS",
    "Background",
    "BackgroundVideo",
    "BlurBackground",
    "ColorBackground",
    "ImageBackground",
    "KeepBackground",
    "TransparentBackground",
    "create_background",
    "parse_color",
]
