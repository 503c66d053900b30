"""Quality presets (``ExportOptions.quality``): what "web", "social" and "archive" mean per codec.

- web: the default; small files that still look clean (MP4 keeps its long-standing CRF 18).
- social: a high-rate master for platforms that re-encode every upload.
- archive: close to lossless, for keeping or further editing.

=================  ==========  ==========  =============  ===================================
codec              web         social      archive        notes
=================  ==========  ==========  =============  ===================================
H.264 (x264) CRF   18          16          10             ``crf`` >= 0 overrides; speed from ``preset``
AAC (mono)         160 kb/s    192 kb/s    256 kb/s       capped at 6 bits/sample (the encoder's limit)
VP9 CRF            32          26          16             constant quality (``b:v 0``), ``crf`` overrides
VP9 deadline       realtime 7  realtime 7  good 4         libvpx deadline + cpu-used; row-mt, 2 threads
Opus (mono)        64 kb/s     96 kb/s     128 kb/s       always 48 kHz
ProRes             4444        4444        4444 XQ        prores_ks profile 4 / 5, 10-bit 4:4:4(:4)
GIF, PNG, WAV      (not affected: 255-colour palette / lossless / 16-bit PCM)
=================  ==========  ==========  =============  ===================================

VP9 speed, measured on 512x512 RGBA talking-head frames with alpha (2 cores): "realtime"
at cpu-used 6 encodes ~4-5x faster than "good" at cpu-used 4-5 for files ~10 % larger at
the same luma PSNR (42.6 vs 42.7 dB at CRF 26), so the interactive presets use it and only
"archive" spends the time. cpu-used 7 instead of 6 then encoded rendered RGBA frames
1.42x faster (346 vs 244 frames/s, 150 frames, medians of 3) with files 1 % larger and
the same PSNR against the rendered frames (36.26 vs 36.27 dB, RGB).

x264 speed (``ExportOptions.preset``): "auto" (the default) is "veryfast", except for a
presenter-clip render, where it is "ultrafast" (:func:`for_source`). At 1280x720 x264 costs
~22 ms of CPU per frame at veryfast and ~5-6 at ultrafast (2 cores, measured on rendered
clip frames): with the clip engine's ~11-13 ms a veryfast render to a file needs ~35 ms of
CPU per frame, more than two cores have at 60 frames/s, while ultrafast needs ~19. At the
same CRF ultrafast's files are ~2-3.3x larger with a higher PSNR (47.2 vs 46.0 dB on the
synthetic 720p clip at CRF 18): the same quality or better, not a smaller file. An
explicit preset is always used as given.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from pipeline.options import ExportOptions

AUTO_PRESET = "veryfast"  # x264 preset "auto" means for photo avatars (and any render of unknown source)
CLIP_PRESET = "ultrafast"  # ... and for presenter clips: 720p renders at >= 60 frames/s on 2 cores


@dataclass(frozen=True)
class QualityPreset:
    x264_crf: int  # H.264 constant rate factor
    aac_bit_rate: int  # AAC bits per second (mono)
    vp9_crf: int  # VP9 constant quality 0..63
    vp9_deadline: str  # libvpx deadline: "realtime" (fast) or "good"
    vp9_cpu_used: int  # libvpx speed within the deadline (higher is faster)
    opus_bit_rate: int  # Opus bits per second (mono)
    prores_profile: int  # prores_ks profile: 4 = 4444, 5 = 4444 XQ


PRESETS: dict[str, QualityPreset] = {
    "web": QualityPreset(18, 160_000, 32, "realtime", 7, 64_000, 4),
    "social": QualityPreset(16, 192_000, 26, "realtime", 7, 96_000, 4),
    "archive": QualityPreset(10, 256_000, 16, "good", 4, 128_000, 5),
}


def preset(opts: ExportOptions) -> QualityPreset:
    return PRESETS[opts.quality]


def x264_crf(opts: ExportOptions) -> int:
    """The H.264 CRF: ``opts.crf`` when set (>= 0), else the quality preset's."""
    return int(opts.crf) if opts.crf >= 0 else preset(opts).x264_crf


def vp9_crf(opts: ExportOptions) -> int:
    """The VP9 CRF: ``opts.crf`` when set (>= 0), else the quality preset's."""
    return int(opts.crf) if opts.crf >= 0 else preset(opts).vp9_crf


def x264_preset(opts: ExportOptions) -> str:
    """The x264 preset: ``opts.preset``, with "auto" read as :data:`AUTO_PRESET`."""
    return AUTO_PRESET if opts.preset == "auto" else opts.preset


SINGLE_THREAD_PIXELS = 768 * 768  # x264 encodes frames up to this size on one thread (:func:`x264_threads`)


def x264_threads(width: int, height: int) -> str:
    """x264's ``threads`` for a frame size: "1" up to :data:`SINGLE_THREAD_PIXELS`, else
    x264's own choice. At these sizes its frame threads (3 on 2 cores, plus lookahead)
    cost more than they bring: measured on 2 cores, 1315 frames at 512x512, veryfast CRF 18,
    medians of 4: auto threads 2.42 s wall / 2.67 CPU-s, one thread 2.17 s / 2.17 CPU-s
    (2.4 % smaller file); 768x768 0.70 s / 0.84 vs 0.72 s / 0.72; at 1024x1024 one thread is
    slower (1.08 -> 1.23 s wall). The render itself needs the other core anyway."""
    return "1" if width * height <= SINGLE_THREAD_PIXELS else "0"


def for_source(opts: ExportOptions, clip: bool) -> ExportOptions:
    """``opts`` for a render of a presenter clip (``clip``) or a photo: "auto" made concrete
    (:data:`CLIP_PRESET` / :data:`AUTO_PRESET`); an explicit preset is kept."""
    if opts.preset != "auto":
        return opts
    return replace(opts, preset=CLIP_PRESET if clip else AUTO_PRESET)
