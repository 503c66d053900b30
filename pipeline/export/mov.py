"""MOV export: Apple ProRes 4444 (prores_ks, 10-bit 4:4:4, optional alpha) plus PCM or AAC audio.

The format editors ingest without loss: every frame is intra-coded, 10-bit, full chroma,
and with ``opts.alpha`` (or RGBA frames) the alpha plane goes into the ProRes frame itself
(yuva444p10le, 16-bit alpha precision in the encoder); FFmpeg decodes it as yuva444p12le.
Profile 4444 for "web"/"social", 4444 XQ for "archive". Colour: BT.709, limited range,
tagged (the ProRes frame header carries it too). Vendor tag "apl0" so Apple tools treat the
file as their own.

Audio: PCM signed 16-bit little-endian at the clip's own rate (``opts.mov_audio="pcm"``,
the default: what editors expect, exact length), or AAC (smaller) with the MP4 settings.
Timing: constant frame rate, time base ``1 / fps``. Metadata: title, comment = "Avatar Studio".
"""

from __future__ import annotations

import logging

import av
import numpy as np

from pipeline.export.base import AudioSpec, ColorConverter, ContainerWriter, tag_bt709
from pipeline.export.mp4 import AAC_FALLBACK_RATE, aac_spec
from pipeline.export.quality import preset
from pipeline.types import AudioClip

log = logging.getLogger(__name__)


class MovWriter(ContainerWriter):
    """ProRes 4444 (+alpha) and PCM s16le (or AAC) in a QuickTime MOV."""

    label = "MOV (ProRes 4444)"
    format = "mov"
    suffixes = (".mov",)
    temp_suffix = ".mov"
    container_format = "mov"
    supports_alpha = True

    def _video_stream(self, first: np.ndarray | None) -> ColorConverter:
        assert first is not None
        pix_fmt = "yuva444p10le" if self._decide_alpha(first) else "yuv444p10le"
        options = {"profile": str(preset(self.opts).prores_profile), "vendor": "apl0"}
        vs = self._new_video_stream("prores_ks", pix_fmt, self.width, self.height, options)
        vs.codec_context.thread_count = 2
        tag_bt709(vs.codec_context)
        return ColorConverter(pix_fmt)

    def _audio_spec(self, clip: AudioClip) -> AudioSpec:
        if self.opts.mov_audio == "aac":
            rate = clip.rate
            if rate not in av.Codec("aac", "w").audio_rates:
                log.info("AAC cannot carry %d Hz; resampling the audio to %d Hz", rate, AAC_FALLBACK_RATE)
                rate = AAC_FALLBACK_RATE
            return aac_spec(rate, preset(self.opts).aac_bit_rate)
        return AudioSpec("pcm_s16le", clip.rate)
