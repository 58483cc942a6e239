"""Letterbox: the one resize every stage shares (training validation, export checks,
calibration, deployment), so calibration and deployment cannot drift apart.

numpy + OpenCV only; a ground module (below data, runtime, train, export and quant).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from edgepose.defaults import LETTERBOX_COLOR


@dataclass(frozen=True)
class LetterboxInfo:
    """How an original image was mapped into the network input: x_net = x * scale_x + pad_x."""

    scale_x: float
    scale_y: float
    pad_x: float
    pad_y: float
    orig_size: tuple[int, int]  # (H, W) of the original image

    def to_original(self, xy: np.ndarray) -> np.ndarray:
        """Map (..., 2) network-input pixel coordinates back to original-image pixels, clipped."""
        out = np.empty_like(xy, dtype=np.float32)
        out[..., 0] = (xy[..., 0] - self.pad_x) / self.scale_x
        out[..., 1] = (xy[..., 1] - self.pad_y) / self.scale_y
        h, w = self.orig_size
        np.clip(out[..., 0], 0, w, out=out[..., 0])
        np.clip(out[..., 1], 0, h, out=out[..., 1])
        return out

    def to_network(self, xy: np.ndarray) -> np.ndarray:
        """Map (..., 2) original-image pixels into network-input pixels."""
        out = np.empty_like(xy, dtype=np.float32)
        out[..., 0] = xy[..., 0] * self.scale_x + self.pad_x
        out[..., 1] = xy[..., 1] * self.scale_y + self.pad_y
        return out


def letterbox(
    image: np.ndarray, size: tuple[int, int], color: int = LETTERBOX_COLOR
) -> tuple[np.ndarray, LetterboxInfo]:
    """Resize `image` (H, W, C) to fit `size` = (H, W) keeping its aspect ratio; pad the rest evenly.

    Returns the (size[0], size[1], C) uint8 image and the mapping back to the original.
    """
    h0, w0 = image.shape[:2]
    th, tw = size
    scale = min(th / h0, tw / w0)
    nw, nh = max(1, round(w0 * scale)), max(1, round(h0 * scale))
    if (nw, nh) != (w0, h0):
        interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
        image = cv2.resize(image, (nw, nh), interpolation=interp)
    left = (tw - nw) // 2
    top = (th - nh) // 2
    if image.ndim == 2:
        image = image[:, :, None]
    out = np.full((th, tw, image.shape[2]), color, dtype=np.uint8)
    out[top : top + nh, left : left + nw] = image
    return out, LetterboxInfo(
        scale_x=nw / w0, scale_y=nh / h0, pad_x=float(left), pad_y=float(top), orig_size=(h0, w0)
    )
