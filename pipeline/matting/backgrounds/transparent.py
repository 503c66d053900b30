"""Background mode "transparent": no background; the output keeps the person's alpha."""

from __future__ import annotations

import numpy as np

from pipeline.matting.backgrounds.base import Background


class TransparentBackground(Background):
    """Nothing behind the person: frames come out RGBA with straight alpha."""

    mode = "transparent"

    def plate(self, t: float, rgb: np.ndarray | None = None, a: np.ndarray | None = None) -> None:
        return None


__all__ = ["TransparentBackground"]
