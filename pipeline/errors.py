"""Errors the pipeline raises. The UI, CLI and API turn them into messages.

Every error carries a message written for the person using the studio: what went
wrong and what to do about it.
"""

from __future__ import annotations


class PipelineError(Exception):
    """Base class of every error the pipeline raises on purpose."""

    code: str = "pipeline_error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:  # pragma: no cover - trivial
        return self.message


class UnsupportedMedia(PipelineError):
    """A file could not be read or decoded (wrong format, corrupt, unknown codec)."""

    code = "unsupported_media"


class NoFaceFound(PipelineError):
    """The image has no detectable face."""

    code = "no_face"


class MultipleFaces(PipelineError):
    """More than one face and the policy is to refuse."""

    code = "multiple_faces"


class FaceTooSmall(PipelineError):
    """The face is too small in the image to animate well."""

    code = "face_too_small"


class FaceTurnedAway(PipelineError):
    """The face is turned too far from the camera (or seen from behind) to animate."""

    code = "face_turned_away"

    def __init__(self, message: str, yaw: float = 0.0, pitch: float = 0.0) -> None:
        super().__init__(message)
        self.yaw = yaw  # degrees, + towards the image right
        self.pitch = pitch  # degrees, + chin down


class SilentAudio(PipelineError):
    """Audio is empty or contains no audible signal."""

    code = "silent_audio"


class InvalidText(PipelineError):
    """Text for speech synthesis is empty or too long."""

    code = "invalid_text"


class InvalidOption(PipelineError):
    """An option value or combination is not possible (e.g. alpha in MP4)."""

    code = "invalid_option"


class ModelUnavailable(PipelineError):
    """A model or engine is not installed or its weights are missing."""

    code = "model_unavailable"


class ModelMissing(ModelUnavailable):
    """A neural model's weights are not on this machine (not pulled, no local path given)."""

    code = "model_missing"


class ModelDownloadError(ModelUnavailable):
    """Downloading or verifying a model's weights failed (offline, no network, checksum mismatch)."""

    code = "model_download_failed"
