"""Face detection, 478 FaceMesh landmarks, and the landmark index groups the engines use."""
