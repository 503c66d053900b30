import io

import numpy as np
import pytest
from PIL import Image

import pipeline
from pipeline.errors import FaceTooSmall, MultipleFaces, NoFaceFound, UnsupportedMedia
from pipeline.media.image import load_image


def test_astronaut_has_478_landmarks_on_the_face(avatar):
    lm = avatar.face.landmarks
    assert lm.shape == (478, 3)
    x0, y0, x1, y1 = avatar.face.box
    assert 160 < x0 < 200 and 250 < x1 < 290 and 50 < y0 < 90 and 160 < y1 < 200
    # mouth corners left/right of the lip centre, eyes above the mouth
    assert lm[61, 0] < lm[13, 0] < lm[291, 0]
    assert lm[159, 1] < lm[13, 1]


def test_no_face_is_a_clear_error():
    blank = np.full((256, 256, 3), 200, np.uint8)
    with pytest.raises(NoFaceFound, match="No face"):
        pipeline.prepare_avatar(blank)


def test_face_too_small(astronaut):
    small = np.asarray(Image.fromarray(astronaut).resize((200, 200)))
    big = np.full((1000, 1000, 3), 230, np.uint8)
    big[400:600, 400:600] = small
    with pytest.raises((FaceTooSmall, NoFaceFound)):
        pipeline.prepare_avatar(big)


def test_two_faces_uses_largest_or_refuses(astronaut):
    small = np.asarray(Image.fromarray(astronaut).resize((384, 384)))
    pair = np.full((512, 900, 3), 230, np.uint8)
    pair[:, :512] = astronaut
    pair[64:448, 512:896] = small
    av = pipeline.prepare_avatar(pair)
    assert av.face.faces_found == 2
    assert av.face.box[2] < 512  # the larger face, on the left
    assert any("2 faces" in w for w in av.warnings)
    with pytest.raises(MultipleFaces, match="2 faces"):
        pipeline.prepare_avatar(pair, multi_face="refuse")


def test_unreadable_image(tmp_path):
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"not an image at all")
    with pytest.raises(UnsupportedMedia, match="broken.jpg"):
        pipeline.prepare_avatar(bad)
    with pytest.raises(UnsupportedMedia, match="not found"):
        pipeline.prepare_avatar(tmp_path / "missing.png")


def test_exif_rotation_and_alpha(astronaut):
    img = Image.fromarray(astronaut).rotate(90, expand=True)  # stored sideways (counter-clockwise)
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 degrees clockwise to view
    buf = io.BytesIO()
    img.save(buf, format="JPEG", exif=exif.tobytes())
    upright = load_image(buf.getvalue())
    assert upright.shape == (512, 512, 3)
    assert np.abs(upright.astype(int) - astronaut.astype(int)).mean() < 12
    rgba = np.zeros((10, 10, 4), np.uint8)
    rgba[..., 0] = 255
    rgba[:5, :, 3] = 255
    flat = load_image(rgba)
    assert flat.shape == (10, 10, 3)
    assert tuple(flat[0, 0]) == (255, 0, 0) and tuple(flat[9, 9]) == (255, 255, 255)


def test_small_face_in_a_4k_photo_is_found_and_animated_at_face_resolution(astronaut):
    big = np.full((2160, 3840, 3), 200, np.uint8)
    big[1200:1712, 1600:2112] = astronaut
    av = pipeline.prepare_avatar(big)
    x0, y0, x1, y1 = av.face.box
    assert 1770 < x0 < 1800 and 1860 < x1 < 1890 and 1260 < y0 < 1290
    from pipeline.engines import warp
    from pipeline.options import RenderOptions

    rig = warp.prepare(av, RenderOptions())
    assert rig.size == (3840, 2160)
    h, w = rig.mouth.field.shape
    assert h * w < 200 * 200  # work scales with the face, not the photo


def test_other_pixel_formats_load(astronaut, tmp_path):
    img = Image.fromarray(astronaut)
    grey16 = Image.fromarray(np.asarray(img.convert("L")).astype(np.uint16) * 257)
    cases = {"g.png": img.convert("L"), "c.jpg": img.convert("CMYK"), "w.webp": img, "p.gif": img.convert("P"), "i16.png": grey16}
    for name, im in cases.items():
        im.save(tmp_path / name)
        arr = load_image(tmp_path / name)
        assert arr.shape == (512, 512, 3) and arr.dtype == np.uint8
        assert abs(float(arr.mean()) - float(astronaut.mean())) < 25, name  # not clipped to white/black
    av = pipeline.prepare_avatar(tmp_path / "i16.png")
    assert 170 < av.face.box[0] < 190
