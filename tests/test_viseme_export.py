import json
import subprocess
import sys

from pipeline.types import AudioClip, Phoneme, Speech
from pipeline.visemes import build_mouth_tracks, export

import numpy as np


def _speech():
    ph = [("_", 0, 0.2), ("b", 0.2, 0.3), ("ɑ", 0.3, 0.5), ("p", 0.5, 0.55), ("f", 0.55, 0.6), ("u", 0.6, 0.8), ("_", 0.8, 1.0)]
    return Speech(AudioClip(np.zeros(16000, np.float32), 16000), tuple(Phoneme(s, a, b) for s, a, b in ph))


def test_rhubarb_cues_cover_clip_with_expected_shapes():
    cues = export.rhubarb_cues(_speech())
    assert cues[0]["start"] == 0.0 and cues[-1]["end"] == 1.0
    assert [c["value"] for c in cues] == ["X", "A", "D", "A", "G", "F", "X"]
    assert all(a["end"] == b["start"] for a, b in zip(cues, cues[1:]))


def test_write_formats(tmp_path):
    sp = _speech()
    tr = build_mouth_tracks(sp, 30)
    rj = json.loads(export.write(sp, tr, tmp_path / "r.json", "rhubarb", "a.wav").read_text())
    assert rj["metadata"]["soundFile"] == "a.wav" and rj["mouthCues"][1]["value"] == "A"
    tsv = export.write(sp, tr, tmp_path / "r.tsv", "rhubarb-tsv").read_text().splitlines()
    assert tsv[0] == "0.00\tX" and tsv[-1] == "1.00\tX"
    pj = json.loads(export.write(sp, tr, tmp_path / "p.json", "json").read_text())
    assert pj["frames"] == 30 and len(pj["channels"]["jaw"]) == 30
    rows = export.write(sp, tr, tmp_path / "p.tsv", "tsv").read_text().splitlines()
    assert rows[0].startswith("time\tjaw") and len(rows) == 31


def test_visemes_cli_with_transcript(speech_wav, tmp_path):
    out = tmp_path / "cues.json"
    r = subprocess.run(
        [sys.executable, "launch.py", "visemes", str(speech_wav), "--text", "Peter bought a bamboo map for Bob.",
         "--format", "rhubarb", "--out", str(out)],
        capture_output=True, text=True, timeout=120,
    )
    assert r.returncode == 0, r.stderr
    cues = json.loads(out.read_text())["mouthCues"]
    assert sum(c["value"] == "A" for c in cues) >= 5  # p, b, b, m, b, m, b, b
