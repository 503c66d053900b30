"""Faces: detection and 478 FaceMesh landmarks (``landmarks``), head pose (``pose``),
face confidence (``confidence``), landmark index groups (``regions``) and the bundled
sample avatars (``samples``)."""
