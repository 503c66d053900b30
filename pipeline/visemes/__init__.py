"""Phonemes or raw audio -> per-frame mouth poses, as a chain of small pure passes.

``build_tracks`` is the whole chain; each pass is importable and tested on its own:
``phones.classify`` -> ``passes.targets`` -> ``passes.coarticulate`` ->
``passes.smooth`` -> ``passes.sample`` (with closures enforced at frame level).
"""

from pipeline.visemes.build import build_mouth_tracks

__all__ = ["build_mouth_tracks"]
