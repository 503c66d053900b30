"""The compositor: background replacement and output framing for one render.

A :class:`Compositor` is prepared once per render (``Compositor(opts, src_size, fps)``)
and turns each animated frame plus its person alpha into an output frame::

    with Compositor(opts, (w, h), fps) as comp:
        for i, (rgb, alpha) in enumerate(frames):
            out = comp.apply(rgb, alpha, i)      # RGB, or RGBA (straight alpha) for "transparent"

What it does, per frame, in this order (the pieces live in the modules named):

1. *Colour matching* (:mod:`.colour_match`): a gentle per-channel shift (and a luminance
   contrast match for textured backgrounds) of the person towards the new background,
   as lookup tables.
2. *Framing* (:mod:`.framing`): the person frame and its alpha are scaled (cv2.resize)
   and placed on the output canvas (aspect, resolution, position, scale).
3. *Pixel classes* (:mod:`.layers`): where alpha is 1 (and no light wraps in) the output
   is the person's own pixel, copied under a mask; where alpha is 0 it is the background
   (:mod:`.backgrounds`, darkened by the shadow); only the soft edge and the light-wrap
   rim are computed pixel by pixel.
4. *Foreground colours* (:mod:`.foreground`) of the soft-edge pixels are estimated
   (blur-fusion foreground estimation, two scales), so the old background mixed into
   hair and edge pixels (and any mixing by the scaling) does not come along as a halo.
   The result is composited "over" with that colour: ``out = a * F + (1 - a) * background``,
   which is the premultiplied-correct sum; transparent output keeps F as straight colour.
5. *Light wrap* (the background blurred, bleeding over the person's edge) and an optional
   soft *drop shadow* under the person (:mod:`.layers`).

Everything that does not change per frame is computed once: the background is made
once while it stays the same array (a colour, an image, a static blurred source, one
frame of a background video); the last full composite is kept, and a frame whose matte
and background match it redoes only the pixels that changed (the mouth, the eyes); one
whose matte changed in a region (a head turn) redoes that region; a frame that changed
nearly everywhere (a video source) is composited in full.

A photo avatar goes further with :meth:`Compositor.prepare_still`: colour matching,
edge colours and light wrap are applied once to the photo, the engine animates that
image with the matte as a fourth channel, and each frame is one blend over the region
where it differs from the still (:mod:`.still`).
"""

from __future__ import annotations

import cv2
import numpy as np

from pipeline import timing
from pipeline.errors import InvalidOption
from pipeline.matting._ops import c3, shrink
from pipeline.matting.backgrounds import Background, KeepBackground, create_background
from pipeline.matting.colour_match import ColourMatch
from pipeline.matting.foreground import as_alpha, estimate_foreground, fusion_fields
from pipeline.matting.framing import Canvas
from pipeline.matting.layers import AlphaLayers, EdgeLayers, mix, point_map, pure_mask, sample
from pipeline.matting.still import PreparedStill
from pipeline.options import BackgroundOptions

class Compositor:
    """Background, edges, framing: one instance per render (see the module docstring)."""

    def __init__(self, opts: BackgroundOptions, src_size: tuple[int, int], fps: float = 25.0) -> None:
        self.opts = opts
        self.fps = float(fps)
        self.canvas = Canvas(opts, src_size)
        self.src_size, self.out_size = self.canvas.src_size, self.canvas.size
        self.place, self.identity = self.canvas.place, self.canvas.identity
        self.background: Background = create_background(opts, self.canvas)
        bg = self.background
        self._colour = ColourMatch(opts.color_match if bg.colour_match else 0.0)
        self._edges = EdgeLayers(self.out_size, opts.light_wrap if bg.light_wrap else 0.0, opts.shadow)
        self._f, self._k = self._edges.f, self._edges.k  # colour fields are worked out 1/f the size
        # where the scaled source lands (1) on the canvas, at the working resolution
        self._valid_low: np.ndarray | None = None
        if not self.identity:
            cw, ch = self.out_size
            valid = np.zeros((ch, cw), np.float32)
            if self.canvas.clip is not None:
                valid[self.canvas.clip[0]] = 1.0
            self._valid_low = shrink(valid, self._f)
        # caches, each with what it depends on
        self._alpha_ref: np.ndarray | None = None  # copy of the last matte (source size)
        self._alpha_obj: np.ndarray | None = None  # the caller's last matte array
        self._alpha_raw: np.ndarray | None = None  # a copy of it, as given
        self._layers: AlphaLayers | None = None  # <- matte
        self._plate_key: object = None  # plate the caches below were built for
        self._base: np.ndarray | None = None  # last full composite (cached path)
        self._snap: np.ndarray | None = None  # the (placed) person colours it was made from
        self._snap_src: np.ndarray | None = None  # and the source frame (reframed "blur")
        self._mixed: dict[str, np.ndarray | None] | None = None  # per mixed pixel: colour fields, background
        self._grid: np.ndarray | None = None  # background pixels watched in mode "blur"
        self._fields: tuple[np.ndarray, np.ndarray] | None = None  # colour fields of the base (1/f size)
        self._base_plate: np.ndarray | None = None  # the background the base was made on
        self._alpha_is_base = False  # the last matte equals the base's
        self._still: PreparedStill | None = None  # a prepared photo avatar

    # -- public ------------------------------------------------------------------------

    @property
    def has_alpha(self) -> bool:
        """True when frames come out RGBA (mode "transparent")."""
        return self.opts.mode == "transparent"

    @property
    def needs_alpha(self) -> bool:
        """False for mode "keep": no matting needed."""
        return self.opts.mode != "keep"

    def prepare_still(self, rgb: np.ndarray, alpha: np.ndarray) -> np.ndarray:
        """Treat a photo avatar's colours once, for the engine to animate.

        Returns the still (uint8 RGB, source size) with the person's colours matched to
        this background, soft-edge colours unmixed from the old background and the light
        wrap baked in. Animate it with the matte carried along (e.g. as a fourth channel)
        and pass the frames to :meth:`apply`: from then on a frame costs one blend
        ``a * colour + (1 - a) * background`` over the region where it differs from the
        still (the mouth, the eyes, the head when it moves), which keeps a photo avatar's
        background work to a fraction of a millisecond per frame at 512x512.
        """
        rgb = self._check_rgb(rgb)
        a = as_alpha(alpha, rgb.shape).copy()
        if self.opts.mode == "keep":
            return rgb.copy()
        plate = self.background.plate(0.0, rgb, a)
        self._colour.update(rgb, a, plate)
        self._plate_key = plate
        person = self._colour.recolour(rgb)
        fg = estimate_foreground(person, a)
        edges = self._edges
        if edges.wrap > 0 and plate is not None:
            scale = self.place.w / self.src_size[0]
            sigma = edges.wrap_sigma / scale
            weight = np.clip(1.0 - cv2.GaussianBlur(a, (0, 0), sigma), 0.0, 1.0) * np.float32(edges.wrap)
            weight[(weight < 2e-3) | (a <= 0.0)] = 0.0
            colour = edges.wrap_colour(plate)
            if not self.identity:  # the canvas colours behind each source pixel
                m = np.float32([[scale, 0, self.place.x], [0, scale, self.place.y]])
                colour = cv2.warpAffine(
                    colour, m, self.src_size, flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                    borderMode=cv2.BORDER_REPLICATE,
                )
            fg += c3(weight) * (colour - fg)
        still = np.clip(fg + 0.5, 0, 255).astype(np.uint8)
        self._still = PreparedStill(still, a, self.canvas, edges, self.has_alpha)
        return still.copy()

    def apply(self, rgb: np.ndarray, alpha: np.ndarray | None, frame_index: int = 0) -> np.ndarray:
        """The output frame for source frame ``rgb`` (uint8 HxWx3) with person ``alpha``
        (float32 HxW in [0, 1], or uint8) at output frame ``frame_index``: uint8 RGB, or
        RGBA with straight alpha for mode "transparent". An RGBA frame with ``alpha``
        None brings its matte in its fourth channel."""
        four = alpha is None and isinstance(rgb, np.ndarray) and rgb.ndim == 3 and rgb.shape[2] == 4
        if four and self._still is not None and rgb.dtype == np.uint8 and rgb.shape[1::-1] == self.src_size:
            return self._still.apply_rgba(np.ascontiguousarray(rgb), self._timed_plate(frame_index))
        if four:
            alpha = cv2.extractChannel(rgb, 3)  # an engine that carries the matte as a fourth channel
        rgb = self._check_rgb(rgb)
        if isinstance(self.background, KeepBackground):
            return self.background.frame(rgb)
        if self._still is not None and alpha is not None:
            return self._still.apply(rgb, alpha, self._timed_plate(frame_index))
        if alpha is None:
            raise InvalidOption(f"Background mode {self.opts.mode!r} needs the person's alpha matte.")
        alpha_changed = self._update_alpha(alpha, rgb.shape)
        a = self._alpha_ref
        assert a is not None
        plate = self._timed_plate(frame_index)
        if self._base is not None and plate is self._plate_key and self._bg_still(rgb):
            # the background is as in the cached composite: redo only what changed
            if self._alpha_is_base and not alpha_changed:
                return self._fast(rgb)
            out = self._incremental(rgb, a)
            if out is not None:
                return out
        if not self.background.timed:
            plate = self.background.plate(self._time(frame_index), rgb, a)
        plate_changed = plate is not self._plate_key
        if plate_changed or (alpha_changed and self._colour.stale) or self._colour.lut is None:
            self._colour.update(rgb, a, plate)
        out = self._full(rgb, a, plate)
        self._plate_key = plate
        return out

    def close(self) -> None:
        self.background.close()

    def __enter__(self) -> "Compositor":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- inputs ----------------------------------------------------------------------

    def _check_rgb(self, rgb: np.ndarray) -> np.ndarray:
        if not isinstance(rgb, np.ndarray) or rgb.ndim != 3 or rgb.shape[2] not in (3, 4) or rgb.dtype != np.uint8:
            raise InvalidOption(f"Frames must be uint8 RGB arrays, got {getattr(rgb, 'shape', None)}.")
        if (rgb.shape[1], rgb.shape[0]) != self.src_size:
            raise InvalidOption(
                f"Frame is {rgb.shape[1]}x{rgb.shape[0]} but the compositor was prepared for "
                f"{self.src_size[0]}x{self.src_size[1]}."
            )
        if rgb.shape[2] == 4:
            return cv2.cvtColor(rgb, cv2.COLOR_RGBA2RGB)  # several times faster than a numpy slice copy
        return np.ascontiguousarray(rgb)

    def _update_alpha(self, alpha: np.ndarray, shape: tuple[int, ...]) -> bool:
        """True when the matte differs from the last frame's; keeps it as float32 in
        ``_alpha_ref`` (alpha layers are rebuilt when it changed).

        The same read-only array as last time (a photo avatar's one matte, or a matter's
        output) is taken as unchanged; anything else is compared, as given (uint8 or
        float), with a copy of the last one.
        """
        raw = self._alpha_raw
        if raw is not None and self._alpha_ref is not None:
            if alpha is self._alpha_obj and not alpha.flags.writeable:
                return False
            if isinstance(alpha, np.ndarray) and alpha.dtype == raw.dtype and np.array_equal(alpha, raw):
                self._alpha_obj = alpha  # held, so that its id is not reused by another array
                return False
        a = as_alpha(alpha, shape)
        self._alpha_ref = a.copy() if np.shares_memory(a, alpha) else a
        self._alpha_raw = np.array(alpha, copy=True)
        self._alpha_obj = alpha
        self._colour.age += 1
        return True

    # -- background --------------------------------------------------------------------

    def _time(self, frame_index: int) -> float:
        return float(timing.frame_start(frame_index, self.fps))

    def _timed_plate(self, frame_index: int) -> np.ndarray | None:
        """The plate of a background that follows the output time (a video); for the
        others the one the caches were built for (it is asked for again only when the
        cached composite cannot be used)."""
        if self.background.timed:
            return self.background.plate(self._time(frame_index))
        return self._plate_key  # type: ignore[return-value]

    @property
    def _blur_plate(self) -> np.ndarray | None:
        """The blurred background mode "blur" made last (None before the first frame)."""
        return getattr(self.background, "cached", None)

    def _alpha_layers(self, a: np.ndarray) -> AlphaLayers:
        """Canvas alpha, light-wrap weight, drop shadow, and the pixel classes of the composite."""
        ac = self.canvas.put(a)
        if ac is a:
            ac = a.copy()
        self._layers = self._edges.alpha_layers(ac)
        return self._layers

    # -- composing -----------------------------------------------------------------------

    def _full(self, rgb: np.ndarray, a: np.ndarray, plate: np.ndarray | None) -> np.ndarray:
        """The composite from scratch: background and shadow, the person's own pixels
        copied, and the soft-edge / light-wrap pixels computed one by one. Keeps what the
        cached and incremental paths need."""
        layers = self._alpha_layers(a)
        person = self.canvas.put(self._colour.recolour(rgb))
        under = self._edges.under(plate, layers)
        out = under.copy()
        self._copy_person(person, layers.pure, out)
        idx = layers.mixed
        low = shrink(person, self._f).astype(np.float32)
        self._fields = fusion_fields(low, layers.low_a, self._valid_low)
        mf, mb = self._fields
        cache = {
            "mf": sample(mf, layers.map_x, layers.map_y, idx.size),
            "mb": sample(mb, layers.map_x, layers.map_y, idx.size),
            "under": under.reshape(-1, under.shape[2])[idx, :3].astype(np.float32),
            "wc": None,
        }
        if layers.wrap3 is not None and plate is not None and not self.has_alpha:
            cache["wc"] = self._edges.wrap_colour(plate).reshape(-1, 3)[idx]
        self._mixed = cache
        self._set_mixed(out, person.reshape(-1, 3)[idx], slice(None))
        self._base = out.copy()  # the caller may draw on ``out``
        self._base_plate = plate
        self._snap = rgb.copy() if self.identity else person.copy()
        self._snap_src = rgb.copy() if (not self.identity and self.background.from_source) else None
        self._alpha_is_base = True
        self._grid = None
        if self.background.from_source:  # background pixels well away from the person
            away = cv2.distanceTransform((a <= 0.0).astype(np.uint8), cv2.DIST_L2, 3) > 0.12 * min(a.shape)
            grid = np.zeros(a.shape, np.uint8)
            grid[::16, ::16] = away[::16, ::16]
            self._grid = grid
        return out

    def _copy_person(self, person: np.ndarray, pure: np.ndarray, out: np.ndarray) -> None:
        if self.has_alpha:
            person = cv2.cvtColor(person, cv2.COLOR_RGB2RGBA)
        cv2.copyTo(person, pure, out)

    def _set_mixed(self, out: np.ndarray, colours: np.ndarray, sel: slice | np.ndarray) -> None:
        """Write the base's mixed pixels ``sel`` (of ``layers.mixed``) whose person colours
        (k, 3) are ``colours``."""
        layers, cache = self._layers, self._mixed
        assert layers is not None and cache is not None
        idx = layers.mixed[sel]
        if idx.size == 0:
            return
        values = mix(
            colours, layers.am3[sel], cache["mf"][sel], cache["mb"][sel], cache["under"][sel],
            None if layers.wrap3 is None else layers.wrap3[sel],
            None if cache["wc"] is None else cache["wc"][sel],
            None if layers.shadow3 is None else layers.shadow3[sel],
            self.has_alpha,
        )
        out.reshape(-1, out.shape[2])[idx] = values

    # -- the cached path for a still matte --------------------------------------------------

    def _bg_still(self, rgb: np.ndarray) -> bool:
        """For "blur": whether a sparse grid of background pixels is as in the base frame
        (else the blurred background may have to be redone)."""
        if not self.background.from_source:
            return True
        snap = self._snap if self.identity else self._snap_src
        return snap is not None and self._grid is not None and cv2.norm(rgb, snap, cv2.NORM_INF, mask=self._grid) == 0

    def _fast(self, rgb: np.ndarray) -> np.ndarray:
        """The base composite with what changed since it was made (the mouth, the eyes, a
        strand of hair the brows pulled) redone: the person's own pixels copied, soft-edge
        pixels recomputed from the cached colour fields."""
        assert self._base is not None and self._snap is not None and self._layers is not None
        out = self._base.copy()
        layers = self._layers
        if self.identity:
            diff = cv2.absdiff(rgb, self._snap).reshape(rgb.shape[0], -1)
            x, y, w, h = cv2.boundingRect(diff)
            if w == 0 or h == 0:
                return out
            x0, x1, y0, y1 = x // 3, (x + w + 2) // 3, y, y + h
            person_roi = self._colour.recolour(np.ascontiguousarray(rgb[y0:y1, x0:x1]))
            self._copy_person(person_roi, np.ascontiguousarray(layers.pure[y0:y1, x0:x1]), out[y0:y1, x0:x1])
            person_at = None
        else:
            person = self.canvas.put(self._colour.recolour(rgb))
            diff = cv2.absdiff(person, self._snap).reshape(person.shape[0], -1)
            x, y, w, h = cv2.boundingRect(diff)
            if w == 0 or h == 0:
                return out
            x0, x1, y0, y1 = x // 3, (x + w + 2) // 3, y, y + h
            self._copy_person(
                np.ascontiguousarray(person[y0:y1, x0:x1]),
                np.ascontiguousarray(layers.pure[y0:y1, x0:x1]),
                out[y0:y1, x0:x1],
            )
            person_at = person
        my, mx = layers.mixed_yx
        sel = np.flatnonzero((my >= y0) & (my < y1) & (mx >= x0) & (mx < x1))
        if sel.size:
            src = rgb if person_at is None else person_at
            colours = src.reshape(-1, 3)[layers.mixed[sel]]
            changed = (colours != self._snap.reshape(-1, 3)[layers.mixed[sel]]).any(axis=1)
            sel, colours = sel[changed], colours[changed]
            if sel.size:
                if person_at is None:
                    colours = self._colour.recolour(colours.reshape(-1, 1, 3)).reshape(-1, 3)
                self._set_mixed(out, colours, sel)
        return out

    def _incremental(self, rgb: np.ndarray, a: np.ndarray) -> np.ndarray | None:
        """The base composite redone where this frame's matte or person differ from it
        (a head turn, a blink, the mouth): alpha layers and soft-edge pixels there are
        recomputed, with the base's colour fields. None when most of the frame changed."""
        base, layers, fields = self._base, self._layers, self._fields
        assert base is not None and layers is not None and fields is not None and self._snap is not None
        cw, ch = self.out_size
        ac = self.canvas.put(a)
        changed = cv2.compare(ac, layers.ac, cv2.CMP_NE)
        ax, ay, aw, ah = cv2.boundingRect(changed)
        if aw * ah > 0.5 * cw * ch:
            return None
        if aw == 0 or ah == 0:
            self._alpha_is_base = True
            return self._fast(rgb)
        self._alpha_is_base = False
        person = None if self.identity else self.canvas.put(self._colour.recolour(rgb))
        now = rgb if person is None else person
        px, py, pw, ph = cv2.boundingRect(cv2.absdiff(now, self._snap).reshape(ch, -1))
        m = self._edges.margin
        x0, y0, x1, y1 = max(0, ax - m), max(0, ay - m), min(cw, ax + aw + m), min(ch, ay + ah + m)
        if pw and ph:
            x0, y0 = min(x0, px // 3), min(y0, py)
            x1, y1 = max(x1, (px + pw + 2) // 3), max(y1, py + ph)
        rows, cols = slice(y0, y1), slice(x0, x1)
        wrap_r, shadow_r = self._edges.soft(ac, (x0, y0, x1, y1))
        ac_r = np.ascontiguousarray(ac[rows, cols])
        plate = self._base_plate
        if self.has_alpha:
            under = np.zeros((y1 - y0, x1 - x0, 4), np.uint8)
            if shadow_r is not None:
                under[..., 3] = np.clip(shadow_r * 255.0 + 0.5, 0, 255)
        else:
            assert plate is not None
            under = np.ascontiguousarray(plate[rows, cols])
            if shadow_r is not None:
                under = np.clip(under * (1.0 - shadow_r)[..., None] + 0.5, 0, 255).astype(np.uint8)
        tile = under.copy()
        if person is None:
            person_r = self._colour.recolour(np.ascontiguousarray(rgb[rows, cols]))
        else:
            person_r = np.ascontiguousarray(person[rows, cols])
        pure = pure_mask(ac_r, wrap_r)
        self._copy_person(person_r, pure.view(np.uint8), tile)
        idx = np.flatnonzero(((ac_r > np.float32(0.5 / 255)) & ~pure).reshape(-1))
        if idx.size:
            ys, xs = np.divmod(idx, x1 - x0)
            map_x = point_map((xs + x0 + 0.5) * self._k - 0.5)
            map_y = point_map((ys + y0 + 0.5) * self._k - 0.5)

            def at(x: np.ndarray | None) -> np.ndarray | None:
                return None if x is None else np.repeat(x.reshape(-1)[idx][:, None], 3, axis=1)

            wc = None
            if wrap_r is not None and plate is not None and not self.has_alpha:
                wc = np.ascontiguousarray(self._edges.wrap_colour(plate)[rows, cols]).reshape(-1, 3)[idx]
            am = at(ac_r)
            assert am is not None
            values = mix(
                person_r.reshape(-1, 3)[idx], am,
                sample(fields[0], map_x, map_y, idx.size), sample(fields[1], map_x, map_y, idx.size),
                under.reshape(-1, under.shape[2])[idx, :3].astype(np.float32),
                at(wrap_r), wc, at(shadow_r), self.has_alpha,
            )
            tile.reshape(-1, tile.shape[2])[idx] = values
        out = base.copy()
        out[rows, cols] = tile
        return out



__all__ = ["Compositor"]
