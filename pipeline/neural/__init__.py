"""Neural networks of the optional engines, written from their published architectures.

Only the network modules (``wav2lip_net``) import torch, and only when a builder is
called through the model registry (:mod:`pipeline.models`); importing this package, or
its numpy-only feature code (:mod:`pipeline.neural.mel`), costs nothing.
"""
