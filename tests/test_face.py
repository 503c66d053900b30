import io
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image
from scipy.spatial import Delaunay

import pipeline
from pipeline.errors import FaceTooSmall, FaceTurnedAway, MultipleFaces, NoFaceFound, UnsupportedMedia
from pipeline.face import confidence, pose, regions
from pipeline.face.landmarks import detect_faces, find_face
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


# --- head pose, confidence, the choice among faces, the sample avatar --------------------

def _render_turned(image: np.ndarray, lm: np.ndarray, yaw: float, pitch: float = 0.0, roll: float = 0.0,
                   bg: int = 128) -> np.ndarray:
    """The photo's head as a textured 3D mesh turned by a known pose, on a plain background.

    The mesh is the face's 478 landmarks (FaceMesh depth) plus three rings around the face
    oval that curve backwards (hair, ears), drawn back to front with one affine warp per
    triangle; triangles turned away from the camera are dropped.
    """
    p = lm.astype(np.float64)
    oval = p[list(regions.FACE_OVAL)]
    c = oval.mean(0)
    fw = np.ptp(p[:, 0])
    rings = []
    for k, dz in ((1.15, 0.25), (1.3, 0.5), (1.45, 0.8)):
        ring = c + (oval - c) * k
        ring[:, 2] = oval[:, 2] + dz * fw
        rings.append(ring)
    v = np.vstack([p, *rings])
    tri = Delaunay(v[:, :2]).simplices
    w = (v - c) @ pose.rotation(yaw, pitch, roll).T + c
    out = np.full_like(image, bg)
    h, wd = image.shape[:2]
    for t in tri[np.argsort(-w[tri][:, :, 2].mean(1))]:
        s, d = v[t, :2].astype(np.float32), w[t, :2].astype(np.float32)
        ds, dd = s[1:] - s[0], d[1:] - d[0]
        if np.cross(ds[0], ds[1]) * np.cross(dd[0], dd[1]) <= 0:
            continue  # seen from behind
        x0, y0 = np.maximum(np.floor(d.min(0)).astype(int), 0)
        x1, y1 = np.minimum(np.ceil(d.max(0)).astype(int) + 1, (wd, h))
        if x1 <= x0 or y1 <= y0:
            continue
        a = cv2.getAffineTransform(s, d - np.float32([x0, y0]))
        patch = cv2.warpAffine(image, a, (x1 - x0, y1 - y0), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
        m = np.zeros((y1 - y0, x1 - x0), np.uint8)
        cv2.fillConvexPoly(m, np.round(d - [x0, y0]).astype(np.int32), 1)
        out[y0:y1, x0:x1][m > 0] = patch[m > 0]
    return out


@pytest.fixture(scope="module")
def astro_lm(astronaut) -> np.ndarray:
    return find_face(astronaut).landmarks


@pytest.fixture(scope="module")
def profile() -> np.ndarray:
    """A real near-profile: the head of scikit-image's cameraman (public domain), 3x."""
    from skimage import data

    head = data.camera()[30:190, 130:290]
    return cv2.cvtColor(cv2.resize(head, None, fx=3, fy=3, interpolation=cv2.INTER_CUBIC), cv2.COLOR_GRAY2RGB)


def _two_people(astronaut: np.ndarray, profile: np.ndarray) -> np.ndarray:
    """A big turned-away head (left) next to a smaller frontal face (right)."""
    canvas = np.full((560, 960, 3), 215, np.uint8)
    canvas[40:520, 0:480] = profile
    canvas[120:520, 530:930] = cv2.resize(astronaut, (400, 400), interpolation=cv2.INTER_AREA)
    return canvas


def _back_of_head(astronaut: np.ndarray, lm: np.ndarray) -> np.ndarray:
    """The astronaut's head seen 'from behind': the face oval filled with her own hair."""
    oval = lm[list(regions.FACE_OVAL), :2]
    c = oval.mean(0)
    x0, y0 = np.floor((oval - c).min(0) * 1.1 + c).astype(int)
    x1, y1 = np.ceil((oval - c).max(0) * 1.1 + c).astype(int)
    hair = astronaut[22:62, 160:270]  # the crown: hair only
    fill = cv2.resize(hair, (x1 - x0, y1 - y0), interpolation=cv2.INTER_CUBIC)
    mask = np.zeros(astronaut.shape[:2], np.float32)
    cv2.fillPoly(mask, [np.round((oval - c) * 1.1 + c).astype(np.int32)], 1.0)
    mask = cv2.GaussianBlur(mask, (0, 0), 3)[y0:y1, x0:x1, None]
    out = astronaut.copy()
    out[y0:y1, x0:x1] = (out[y0:y1, x0:x1] * (1 - mask) + fill * mask).astype(np.uint8)
    return out


def test_head_pose_recovers_rigid_rotations(astro_lm):
    """Landmarks of a real frontal face turned rigidly in 3D and projected: the raw fits
    (2D for yaw and roll, 3D for pitch) read back the turn applied."""
    p0 = astro_lm.astype(np.float64) - astro_lm.mean(0)
    r2, r3 = pose.fit_2d(p0), pose.fit_3d(p0)
    assert np.allclose(pose.angles(pose.rotation(30, -20, 10)), (30, -20, 10))
    worst = np.zeros(3)
    for yaw in (-70, -45, -20, 0, 20, 45, 70):
        for pitch in (-35, 0, 35):
            for roll in (-20, 0, 20):
                r = pose.rotation(yaw, pitch, roll)
                got = pose.raw_pose(p0 @ r.T)
                want = (pose.angles(r @ r2)[0], pose.angles(r @ r3)[1], pose.angles(r @ r2)[2])
                worst = np.maximum(worst, np.abs(np.subtract(got, want)))
    assert worst.max() < 1.0, worst
    # the canonical face itself, turned: exactly the pose
    model = pose.MODEL * 100
    assert np.allclose(pose.raw_pose(model @ pose.rotation(-40, 25, -15).T), (-40, 25, -15), atol=0.01)
    # the photo itself is frontal (a NASA portrait) with a slight tilt
    yaw, pitch, roll = pose.head_pose(astro_lm)
    assert abs(yaw) < 3 and abs(pitch) < 3 and 1 < roll < 5


def test_head_pose_mirror_and_calibration(astro_lm):
    """Mirroring the landmarks (and relabelling each point as its partner) negates yaw and roll."""
    def mirror(pts: np.ndarray) -> np.ndarray:
        m = pts[pose.PARTNER].copy()
        m[:, 0] = -m[:, 0]
        return m

    for yaw, pitch, roll in ((25, 10, 5), (-40, -15, 12)):
        turned = astro_lm @ pose.rotation(yaw, pitch, roll).T
        a, b = pose.head_pose(turned), pose.head_pose(mirror(turned))
        assert abs(a[0] - yaw) < 8 and abs(a[0] + b[0]) < 1.0 and abs(a[1] - b[1]) < 1.0 and abs(a[2] + b[2]) < 1.0
    assert len(pose.MIDLINE) == 28 and np.array_equal(pose.PARTNER[pose.PARTNER], np.arange(478))
    # FaceMesh reads turns short; the calibration lengthens them, more the larger they are
    assert pose.calibrate(0, 0) == (0, 0)
    assert pose.calibrate(20.1, 0)[0] == pytest.approx(20.0)
    assert pose.calibrate(-49.5, 0)[0] == pytest.approx(-60.0)
    assert pose.calibrate(0, 30.4)[1] == pytest.approx(40.0) and pose.calibrate(0, -37.6)[1] == pytest.approx(-40.0)


@pytest.mark.parametrize("yaw,pitch", [(20, 0), (-20, 0), (35, 0), (-35, 0), (0, 25), (0, -25)])
def test_head_pose_of_rendered_turns(astronaut, astro_lm, yaw, pitch):
    """The photo's head rendered turned by a known pose, then found by FaceMesh again."""
    face = find_face(_render_turned(astronaut, astro_lm, yaw, pitch))
    assert abs(face.yaw - yaw) < 8 and abs(face.pitch - pitch) < 8, (face.yaw, face.pitch)
    assert abs(face.roll) < 8
    assert face.confidence > 0.8


def test_turned_away_faces_are_refused(astronaut, astro_lm, profile):
    with pytest.raises(FaceTurnedAway, match=r"turned away \(about \d+°\); use a photo that looks toward") as e:
        find_face(_render_turned(astronaut, astro_lm, 60))
    assert e.value.code == "face_turned_away" and 50 < e.value.yaw < 80
    with pytest.raises(FaceTurnedAway, match="looking up too far") as e:
        find_face(_render_turned(astronaut, astro_lm, 0, -50))
    assert e.value.pitch < -40
    # a real near-profile (the cameraman): FaceMesh fits a mesh; the pose says ~70°
    with pytest.raises(FaceTurnedAway, match="turned away") as e:
        find_face(profile)
    assert e.value.yaw > 55
    with pytest.raises(FaceTurnedAway):
        pipeline.prepare_avatar(profile)


def test_frontal_faces_are_confident(astronaut):
    from matplotlib import cbook

    with cbook.get_sample_data("grace_hopper.jpg") as f:  # US Navy portrait, public domain
        grace = np.asarray(Image.open(f).convert("RGB"))
    for image in (astronaut, grace, np.ascontiguousarray(astronaut[:, ::-1])):
        face = find_face(image)
        assert abs(face.yaw) < 6 and abs(face.pitch) < 6 and abs(face.roll) < 6
        assert face.confidence > 0.8 and face.detection_score > 0.8
        assert face.notes == () and face.faces_found == 1
    mirrored = find_face(np.ascontiguousarray(astronaut[:, ::-1]))
    assert mirrored.roll == pytest.approx(-find_face(astronaut).roll, abs=1.0)


def test_confidence_is_low_off_the_face(astronaut, astro_lm):
    real = confidence.check_face(astronaut, astro_lm)
    assert real.confidence > 0.85 and real.key_error < 0.05 and real.contrast > 1.8
    hair = astro_lm.copy()
    hair[:, 1] -= 70  # the same mesh on her hair, the real face just below
    background = astro_lm.copy()
    background[:, 0] += 170
    back = _back_of_head(astronaut, astro_lm)
    for image, pts in ((astronaut, hair), (astronaut, background), (back, astro_lm)):
        c = confidence.check_face(image, pts)
        assert c.confidence < 0.3, c
        assert c.contrast < 1.2  # hair and backdrop are as busy as the "skin"


def test_a_mesh_on_the_back_of_a_head_is_refused(astronaut, astro_lm, monkeypatch):
    back = _back_of_head(astronaut, astro_lm)
    with pytest.raises(NoFaceFound, match="No face"):
        find_face(back)  # FaceMesh itself finds nothing here ...
    # ... but when it does fit a mesh to hair (as it does on some real photos), it is refused
    from pipeline.face import landmarks

    monkeypatch.setattr(landmarks, "detect_faces", lambda image: [astro_lm.copy()])
    unclear = r"^What was found is not clearly a face \(confidence 0\.\d\d; it may be hair"
    with pytest.raises(NoFaceFound, match=unclear):
        find_face(back)
    assert find_face(astronaut).confidence > 0.9  # the same mesh on the real face is fine


def test_facemesh_fitted_to_hair_is_refused(astronaut, astro_lm):
    """Zoomed in, FaceMesh does fit a face to the hair of the 'back of a head' (as it did on
    a real two-person photo); the old find_face animated it, now it is refused."""
    crop = _back_of_head(astronaut, astro_lm)[15:229, 117:331]
    zoomed = cv2.resize(crop, (384, 384), interpolation=cv2.INTER_CUBIC)
    meshes = detect_faces(zoomed)
    assert len(meshes) == 1 and np.ptp(meshes[0][:, 0]) > 64  # a mesh, big enough to pass the old checks
    c = confidence.check_face(zoomed, meshes[0])
    assert c.confidence < 0.2 and c.contrast < 1.0
    with pytest.raises(NoFaceFound, match="not clearly a face"):
        find_face(zoomed)


def test_frontal_face_wins_over_a_larger_turned_away_one(astronaut, profile):
    photo = _two_people(astronaut, profile)
    faces = detect_faces(photo)
    assert len(faces) == 2 and np.ptp(faces[0][:, 0]) > 2 * np.ptp(faces[1][:, 0])  # the profile is larger
    face = find_face(photo)
    assert face.box[0] > 530  # the astronaut on the right
    assert abs(face.yaw) < 6 and face.confidence > 0.8 and face.faces_found == 2
    assert len(face.notes) == 1 and "larger face was not used: turned away (about" in face.notes[0]
    assert find_face(photo, policy="refuse").box == face.box  # only one usable face: nothing to refuse
    av = pipeline.prepare_avatar(photo)
    assert av.face.box == face.box


def test_no_usable_face_says_why_for_each(astronaut, astro_lm, profile):
    photo = np.full((560, 1000, 3), 215, np.uint8)
    photo[40:520, 0:480] = profile
    photo[24:536, 488:1000] = _render_turned(astronaut, astro_lm, 60)
    with pytest.raises(FaceTurnedAway) as e:
        find_face(photo)
    msg = str(e.value)
    assert msg.startswith("2 faces were found but none can be animated: the largest is turned away (about")
    assert "another is turned away" in msg and msg.endswith("use a photo that looks toward the camera.")


def test_bundled_sample_avatar_is_frontal_and_confident():
    from pipeline.face import samples

    path = samples.sample_avatar_path()
    assert path.name == "astronaut.jpg" and path.is_file() and path.stat().st_size < 120_000
    assert samples.SAMPLES[0].path == path and "public domain" in samples.SAMPLES[0].licence
    readme = (path.parent / "README.md").read_text()
    assert "public domain" in readme and "NASA" in readme and "astronaut.jpg" in readme
    with pytest.raises(KeyError, match="astronaut"):
        samples.sample("nobody")
    image = load_image(path)
    assert image.shape == (512, 512, 3)
    face = find_face(image)
    assert abs(face.yaw) < 6 and abs(face.pitch) < 6 and face.confidence > 0.85 and face.faces_found == 1


def test_mediapipe_is_imported_without_pyplot_or_tasks_which_still_work_when_used():
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from pipeline.face.mp_import import mediapipe\n"
        "mp = mediapipe()\n"
        "for name in ('matplotlib.pyplot', 'mediapipe.tasks.python.vision', 'sounddevice'):\n"
        "    assert name not in sys.modules, name + ' was imported'\n"
        "assert mp.solutions.face_mesh.FaceMesh\n"
        "from mediapipe.python.solutions import drawing_utils\n"
        "import matplotlib.pyplot as plt\n"
        "assert drawing_utils.plt.figure is plt.figure\n"
        "from mediapipe.tasks.python import vision\n"
        "assert mp.tasks.vision.FaceLandmarker is vision.FaceLandmarker\n"
        "assert mp.tasks.BaseOptions\n"
        "print('ok')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         cwd=str(Path(__file__).resolve().parents[1]))
    assert out.returncode == 0 and out.stdout.strip().endswith("ok"), out.stderr[-2000:]
