"""Torch-free runtime: numpy, OpenCV and onnxruntime only. This is what ships on a board."""

from __future__ import annotations

from edgepose.runtime.letterbox import LetterboxInfo, letterbox

__all__ = ["LetterboxInfo", "letterbox"]
