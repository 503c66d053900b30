"""A photo avatar's prepared still: frames animated from it cost one blend where they differ.

:meth:`Compositor.prepare_still <pipeline.matting.compositor.Compositor.prepare_still>`
treats the photo once (colour match, edge colours, light wrap) and returns the image the
engine animates; this module holds that still and composites the animated frames: the
still's own composite is made once per background plate, and each frame redoes only
the box where it (or its matte) differs from the still, with one
``a * colour + (1 - a) * background`` blend (~0.3-0.5 ms at 512x512 with head motion).
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from pipeline.matting._ops import c3
from pipeline.matting.foreground import as_alpha
from pipeline.matting.framing import Canvas
from pipeline.matting.layers import EdgeLayers

Box = tuple[int, int, int, int]  # x0, y0, x1, y1 in source pixels


class PreparedStill:
    """The treated still (uint8 RGB, source size) and its matte, on one canvas."""

    def __init__(self, still: np.ndarray, a: np.ndarray, canvas: Canvas, edges: EdgeLayers, rgba_out: bool) -> None:
        self.image = still
        self.alpha = a  # float32 matte of the still
        self.alpha8 = np.clip(a * 255.0 + 0.5, 0, 255).astype(np.uint8)
        self.canvas = canvas
        self.edges = edges
        self.rgba_out = rgba_out  # output frames are RGBA (transparent background)
        self._base: tuple[object, np.ndarray, np.ndarray, np.ndarray | None] | None = None  # <- plate
        self._rgba: np.ndarray | None = None  # the still with its matte as a fourth channel

    def layers(self, plate: np.ndarray | None) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """(base composite of the still, what shows behind the person, shadow) on the
        canvas, rebuilt when the background changes."""
        if self._base is not None and self._base[0] is plate:
            return self._base[1], self._base[2], self._base[3]
        ac = self.canvas.put(self.alpha)
        _, shadow = self.edges.soft(ac) if self.edges.shadow else (None, None)
        cw, ch = self.canvas.size
        if self.rgba_out:
            under = np.zeros((ch, cw, 4), np.uint8)
            if shadow is not None:
                under[..., 3] = np.clip(shadow * 255.0 + 0.5, 0, 255)
        else:
            assert plate is not None
            under = plate
            if shadow is not None:
                under = np.clip(plate * c3(1.0 - shadow) + 0.5, 0, 255).astype(np.uint8)
        base = self.blend(self.canvas.put(self.image), ac, under, shadow)
        self._base = (plate, base, under, shadow)
        return base, under, shadow

    def blend(self, colour: np.ndarray, a: np.ndarray, under: np.ndarray, shadow: np.ndarray | None) -> np.ndarray:
        """``a * colour + (1 - a) * under`` (uint8); for RGBA output the straight colour with
        the coverage of person and shadow as alpha."""
        if not self.rgba_out:
            return cv2.blendLinear(colour, under, a, 1.0 - a)
        if shadow is None:
            return cv2.merge([*cv2.split(colour), np.clip(a * 255.0 + 0.5, 0, 255).astype(np.uint8)])
        cov = a + shadow * (1.0 - a)
        rgb = np.clip(colour * c3(a / np.maximum(cov, 1e-6)) + 0.5, 0, 255).astype(np.uint8)
        return cv2.merge([*cv2.split(rgb), np.clip(cov * 255.0 + 0.5, 0, 255).astype(np.uint8)])

    def apply_rgba(self, rgba: np.ndarray, plate: np.ndarray | None) -> np.ndarray:
        """An RGBA frame (matte in the fourth channel) animated from the still: one
        difference finds the changed box, which alone is split and blended."""
        if self._rgba is None:
            self._rgba = cv2.merge([*cv2.split(self.image), self.alpha8])
        x, y, w, h = cv2.boundingRect(cv2.absdiff(rgba, self._rgba).reshape(rgba.shape[0], -1))
        box = (x // 4, y, (x + w + 3) // 4, y + h) if w and h else None
        rows, cols = (slice(box[1], box[3]), slice(box[0], box[2])) if box else (slice(0, 0), slice(0, 0))
        part = np.ascontiguousarray(rgba[rows, cols]) if self.canvas.identity else rgba
        return self.frame(
            cv2.cvtColor(part, cv2.COLOR_RGBA2RGB) if part.size else part[..., :3],
            cv2.extractChannel(part, 3) if part.size else part[..., 3],
            box, plate,
        )

    def apply(self, rgb: np.ndarray, alpha: np.ndarray, plate: np.ndarray | None) -> np.ndarray:
        """A frame animated from the still: blended only where it differs from it."""
        if alpha.dtype == np.uint8:
            alpha_diff = cv2.compare(alpha, self.alpha8, cv2.CMP_NE)
        else:
            alpha_diff = cv2.compare(as_alpha(alpha, rgb.shape), self.alpha, cv2.CMP_NE)
        ax, ay, aw, ah = cv2.boundingRect(alpha_diff)
        px, py, pw, ph = cv2.boundingRect(cv2.absdiff(rgb, self.image).reshape(rgb.shape[0], -1))
        if pw and ph:
            px, pw = px // 3, (px + pw + 2) // 3 - px // 3
        boxes = [(x, y, x + w, y + h) for x, y, w, h in ((ax, ay, aw, ah), (px, py, pw, ph)) if w and h]
        box = None
        if boxes:
            (bx0, by0, _, _), (_, _, bx1, by1) = np.min(boxes, axis=0), np.max(boxes, axis=0)
            box = (int(bx0), int(by0), int(bx1), int(by1))
        if self.canvas.identity and box is not None:
            rows, cols = slice(box[1], box[3]), slice(box[0], box[2])
            rgb, alpha = np.ascontiguousarray(rgb[rows, cols]), np.ascontiguousarray(alpha[rows, cols])
        return self.frame(rgb, alpha, box, plate)

    def frame(self, rgb: np.ndarray, alpha: np.ndarray, box: Box | None, plate: np.ndarray | None) -> np.ndarray:
        """The still's base with ``box`` (None: nothing changed) blended from the frame:
        ``rgb``/``alpha`` are that box's pixels when framing is the identity, else the
        whole frame."""
        base, under, shadow = self.layers(plate)
        out = base.copy()
        if box is None:
            return out
        canvas = self.canvas
        x0, y0, x1, y1 = box
        if canvas.identity:
            rows, cols = slice(y0, y1), slice(x0, x1)
            colour, ar = rgb, as_alpha(alpha, rgb.shape)
        else:  # the changed source box, scaled onto the canvas (the whole frame is resized)
            if canvas.clip is None:
                return out
            place = canvas.place
            s = place.w / canvas.src_size[0]
            cw, ch = canvas.size
            cx0, cy0 = max(0, int(x0 * s) + place.x - 2), max(0, int(y0 * s) + place.y - 2)
            cx1 = min(cw, int(math.ceil(x1 * s)) + place.x + 2)
            cy1 = min(ch, int(math.ceil(y1 * s)) + place.y + 2)
            if cx1 <= cx0 or cy1 <= cy0:
                return out
            rows, cols = slice(cy0, cy1), slice(cx0, cx1)
            colour = np.ascontiguousarray(canvas.put(rgb)[rows, cols])
            ar = np.ascontiguousarray(canvas.put(as_alpha(alpha, rgb.shape))[rows, cols])
        sh = None if shadow is None else np.ascontiguousarray(shadow[rows, cols])
        out[rows, cols] = self.blend(colour, ar, np.ascontiguousarray(under[rows, cols]), sh)
        return out


__all__ = ["PreparedStill"]
