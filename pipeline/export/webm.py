"""WebM export: VP9 (libvpx, BT.709, optional alpha) plus Opus audio at 48 kHz, written atomically.

Alpha: with ``opts.alpha`` or RGBA frames the video is yuva420p. libvpx encodes the alpha
plane as a second VP9 stream which the WebM muxer stores per frame as BlockAdditional side
data and flags with the track tag ``alpha_mode=1``. Browsers (Chrome, Firefox) and FFmpeg's
``libvpx-vp9`` decoder show it; FFmpeg's default ``vp9`` decoder ignores it (opaque
yuv420p). ``pipeline.export.readback.decode_rgba`` reads it back with libvpx-vp9.

Quality: constant quality (``crf`` with ``b:v 0``) from ``opts.quality`` (web 32, social
26, archive 16; ``opts.crf`` >= 0 overrides); libvpx "realtime" speed 6 for web/social and
"good" speed 4 for archive, with row multithreading (see ``pipeline.export.quality``).
Opus runs at 48 kHz (the clip is resampled when needed); its encoder delay is written as
the track's CodecDelay / pre-skip and its end padding as DiscardPadding, so decoders
return the clip's exact length.

Timing: constant frame rate, frame ``i`` at ``i / fps``; WebM stores times in
milliseconds, so at rates like 29.97 each timestamp is rounded to the nearest ms (no drift).
Odd sizes are fine (VP9 handles them). Metadata: TITLE and COMMENT = "Avatar Studio".
"""

from __future__ import annotations

import numpy as np

from pipeline.export.base import AudioSpec, ColorConverter, ContainerWriter, tag_bt709
from pipeline.export.quality import preset, vp9_crf
from pipeline.types import AudioClip

OPUS_RATE = 48000


class WebmWriter(ContainerWriter):
    """VP9 + Opus in WebM; alpha kept when asked for or when the frames are RGBA."""

    label = "WebM (VP9)"
    format = "webm"
    suffixes = (".webm",)
    browser_playable = True
    temp_suffix = ".webm"
    container_format = "webm"
    supports_alpha = True

    def _video_stream(self, first: np.ndarray | None) -> ColorConverter:
        assert first is not None
        pix_fmt = "yuva420p" if self._decide_alpha(first) else "yuv420p"
        q = preset(self.opts)
        options = {
            "crf": str(vp9_crf(self.opts)),
            "b": "0",
            "deadline": q.vp9_deadline,
            "cpu-used": str(q.vp9_cpu_used),
            "row-mt": "1",
        }
        vs = self._new_video_stream("libvpx-vp9", pix_fmt, self.width, self.height, options)
        vs.codec_context.thread_count = 2
        tag_bt709(vs.codec_context)
        return ColorConverter(pix_fmt)

    def _audio_spec(self, clip: AudioClip) -> AudioSpec:
        return AudioSpec("libopus", OPUS_RATE, bit_rate=preset(self.opts).opus_bit_rate, sample_format="flt")
