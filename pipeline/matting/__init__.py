"""Person matting and background compositing.

    from pipeline.matting import matte_photo, create_matter, Compositor, BackgroundOptions

    # a video source: matte every frame, state threaded from frame to frame
    matter = create_matter("selfie")
    alpha, state = matter.matte(frame, state)
    with Compositor(BackgroundOptions(mode="blur"), (w, h), fps) as comp:
        out = comp.apply(frame, alpha, frame_index)  # RGB, or RGBA for mode "transparent"

    # a photo avatar: matte once, treat the photo once, animate it with the matte as a
    # fourth channel; each frame is then blended only where it changed
    alpha = matte_photo(image)
    still = comp.prepare_still(image, alpha)         # the engine animates this image
    out = comp.apply(rgba_frame, None, frame_index)

Engines are registered in :data:`pipeline.matting.base.MATTERS` and imported lazily;
models load through :mod:`pipeline.models` on first use, never at import.

Where things are, one job per module:

    base.py          the Matter protocol, the engine registry, per-video matte state
    selfie.py        MediaPipe selfie segmentation with edge refinement (the default matter)
    compositor.py    Compositor: one render's background replacement, per frame
    framing.py       output shape and size, where the person lands, fitting a picture
    foreground.py    edge decontamination (foreground colour estimation), plain "over"
    colour_match.py  pulling the person's colours towards the background
    layers.py        light wrap, drop shadow, pixel classes of a composite
    still.py         a photo avatar's prepared still (frames blended only where they change)
    backgrounds/     one module per background mode (keep, blur, color, image, video, transparent)
    _ops.py, _buffers.py  small image operations and scratch buffers
"""

from __future__ import annotations

import numpy as np

from pipeline.matting.backgrounds import BackgroundVideo, parse_color
from pipeline.matting.base import MATTERS, Matter, MatteState, available, create_matter, matter_class
from pipeline.matting.compositor import Compositor
from pipeline.matting.foreground import composite_over, estimate_foreground
from pipeline.matting.framing import Placement, fit_image, output_size, placement
from pipeline.options import BackgroundOptions

__all__ = [
    "MATTERS",
    "BackgroundOptions",
    "BackgroundVideo",
    "Compositor",
    "Matter",
    "MatteState",
    "Placement",
    "available",
    "composite_over",
    "create_matter",
    "estimate_foreground",
    "fit_image",
    "matte_photo",
    "matter_class",
    "output_size",
    "parse_color",
    "placement",
]


def matte_photo(image: np.ndarray, model_selection: int = 0) -> np.ndarray:
    """Alpha (float32 HxW in [0, 1]) of the person in a still image, best quality."""
    from pipeline.matting.selfie import matte_photo as _matte_photo

    return _matte_photo(image, model_selection)
