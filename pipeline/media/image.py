"""Reading still images: any format Pillow reads, EXIF orientation honoured, alpha flattened."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from pipeline.errors import UnsupportedMedia

MAX_PIXELS = 8192 * 8192  # larger images are refused rather than exhausting memory


def _to_8bit(img: Image.Image) -> Image.Image:
    """16-bit and float greyscale (modes I;16, I, F) scaled to 8 bits; Pillow would clip them."""
    if img.mode.startswith("I;16") or img.mode in ("I", "F"):
        arr = np.asarray(img, dtype=np.float64)
        top = 65535.0 if img.mode.startswith("I;16") or arr.max() > 255 else (1.0 if arr.max() <= 1.0 else 255.0)
        return Image.fromarray(np.clip(arr / top * 255.0 + 0.5, 0, 255).astype(np.uint8), "L")
    return img


def _flatten(img: Image.Image, background: tuple[int, int, int] = (255, 255, 255)) -> Image.Image:
    if img.mode in ("RGBA", "LA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        base = Image.new("RGBA", rgba.size, background + (255,))
        base.alpha_composite(rgba)
        return base.convert("RGB")
    return img.convert("RGB")


def load_image(source: str | Path | bytes | np.ndarray | Image.Image) -> np.ndarray:
    """Decode ``source`` to an RGB ``uint8`` array, upright, transparency over white."""
    if isinstance(source, np.ndarray):
        arr = source
        if arr.dtype != np.uint8:
            if np.issubdtype(arr.dtype, np.floating) and arr.size and arr.max() <= 1.0:
                arr = arr * 255.0
            arr = np.clip(arr, 0, 255).astype(np.uint8)
        if arr.ndim == 2:
            arr = np.repeat(arr[:, :, None], 3, axis=2)
        if arr.ndim != 3 or arr.shape[2] not in (3, 4) or min(arr.shape[:2]) < 1:
            raise UnsupportedMedia(f"Expected an image array of shape (H, W, 3|4), got {arr.shape}.")
        if arr.shape[2] == 4:
            return np.asarray(_flatten(Image.fromarray(arr, "RGBA")))
        return np.ascontiguousarray(arr)
    name = "image"
    try:
        if isinstance(source, Image.Image):
            img = source
        elif isinstance(source, (bytes, bytearray)):
            img = Image.open(io.BytesIO(source))
        else:
            path = Path(source)
            name = path.name
            if not path.is_file():
                raise UnsupportedMedia(f"Image file not found: {path}")
            img = Image.open(path)
        if img.width * img.height > MAX_PIXELS:
            raise UnsupportedMedia(
                f"{name} is {img.width}x{img.height}; images up to {MAX_PIXELS // 1_000_000} megapixels are supported."
            )
        img.load()
        img = ImageOps.exif_transpose(img)
        return np.asarray(_flatten(_to_8bit(img)))
    except UnsupportedMedia:
        raise
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as exc:
        raise UnsupportedMedia(f"Could not read {name} as an image ({exc.__class__.__name__}: {exc}).") from exc


def image_key(image: np.ndarray) -> str:
    """Content hash of an image array, used to cache per-avatar work."""
    h = hashlib.sha256()
    h.update(str(image.shape).encode())
    h.update(np.ascontiguousarray(image).tobytes())
    return h.hexdigest()[:16]


def resize_to(image: np.ndarray, longest: int) -> tuple[np.ndarray, float]:
    """Scale so the longest side is ``longest`` px (even dimensions); returns (image, scale)."""
    import cv2

    h, w = image.shape[:2]
    scale = longest / float(max(h, w))
    nw, nh = max(2, int(round(w * scale / 2)) * 2), max(2, int(round(h * scale / 2)) * 2)
    if (nw, nh) == (w, h):
        return image, 1.0
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC
    return cv2.resize(image, (nw, nh), interpolation=interp), nw / float(w)
