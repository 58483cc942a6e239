"""Image -> network tensor: the one preprocessing that calibration and deployment both use."""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from edgepose.errors import DataError
from edgepose.letterbox import LetterboxInfo, letterbox
from edgepose.spec import InputFormat, PoseSpec


def to_bgr(image: np.ndarray, *, rgb: bool = False) -> np.ndarray:
    """Any supported image as a contiguous (H, W, 3) uint8 BGR array.

    Takes (H, W), (H, W, 1), (H, W, 3) or (H, W, 4) (alpha dropped), uint8 or uint16 (top 8 bits
    kept); `rgb` says the colour channels are in RGB(A) order.
    """
    if not isinstance(image, np.ndarray):
        raise DataError(
            f"image is a {type(image).__name__}, expected a numpy array (H, W[, C]); read it with cv2"
        )
    if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] not in (1, 3, 4)):
        raise DataError(
            f"image has shape {image.shape}, expected (H, W), (H, W, 1), (H, W, 3) or (H, W, 4); "
            "pass one HWC image, not a CHW tensor or a batch"
        )
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise DataError(f"image has shape {image.shape} with no pixels; pass a non-empty image")
    if image.dtype == np.uint16:
        image = (image >> 8).astype(np.uint8)  # (H, W[, C])
    elif image.dtype != np.uint8:
        raise DataError(
            f"image dtype is {image.dtype}, expected uint8 (or uint16); "
            "convert floats in [0, 1] with (img * 255).round().astype(np.uint8)"
        )
    if image.ndim == 2 or image.shape[2] == 1:
        return cv2.cvtColor(image.reshape(image.shape[:2]), cv2.COLOR_GRAY2BGR)  # (H, W) -> (H, W, 3)
    if image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_RGBA2BGR if rgb else cv2.COLOR_BGRA2BGR)  # (H, W, 3)
    if rgb:
        return cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    return np.ascontiguousarray(image)


def preprocess(image: np.ndarray, spec: PoseSpec, *, rgb: bool = False) -> tuple[np.ndarray, LetterboxInfo]:
    """Letterbox `image` (BGR unless `rgb`) to the model input; returns the (1, 3, H, W) tensor and mapping.

    The tensor is RGB, float32 in [0, 1] or uint8 in [0, 255] as `spec.input_format` says.
    """
    bgr = to_bgr(image, rgb=rgb)
    boxed, info = letterbox(bgr, spec.input_size, spec.letterbox_color)  # (H, W, 3) uint8
    chw = boxed[:, :, ::-1].transpose(2, 0, 1)[None]  # BGR HWC -> (1, 3, H, W) RGB
    return to_input(chw, spec.input_format), info


def to_input(rgb: np.ndarray, input_format: InputFormat) -> np.ndarray:
    """uint8 RGB (B, 3, H, W) -> the network's input tensor: uint8 as is, float32 / 255 in [0, 1]."""
    if input_format is InputFormat.UINT8:
        return np.ascontiguousarray(rgb)
    return rgb.astype(np.float32) / np.float32(255.0)


def preprocess_batch(
    images: Sequence[np.ndarray], spec: PoseSpec, *, rgb: bool = False
) -> tuple[np.ndarray, list[LetterboxInfo]]:
    """`preprocess` of each image, stacked: the (B, 3, H, W) tensor and one mapping per image."""
    if not images:
        raise DataError("no images to preprocess; pass at least one image")
    done = [preprocess(image, spec, rgb=rgb) for image in images]
    return np.concatenate([t for t, _ in done]), [info for _, info in done]  # (B, 3, H, W)
