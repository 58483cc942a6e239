"""Draw poses with OpenCV: boxes with score labels, and skeletons by the paper's rule.

Keypoints whose confidence is below `kpt_thr` (0.5 in YOLO-Pose) are not drawn, nor any limb
touching one: the model marks them as occluded or outside the image.

Line width, dot size and font scale grow with the image (`DrawStyle.for_image`), so a 4K frame is as
readable as a 640 px photo. Score labels sit on a filled tag above the box, or just inside its top
edge when the box touches the top of the image; an optional banner (e.g. "31.2 FPS") sits top left
on its own tag and labels that would run under it move below it.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from edgepose.runtime.preprocess import to_bgr
from edgepose.runtime.results import PoseResult

BOX_COLOR = (0, 200, 255)  # BGR
KEYPOINT_COLOR = (0, 0, 255)
BANNER_COLOR, BANNER_TEXT = (32, 32, 32), (0, 255, 0)
_FONT = cv2.FONT_HERSHEY_SIMPLEX
_LIMB_PALETTE = (
    (255, 128, 0), (255, 153, 51), (255, 178, 102), (230, 230, 0), (255, 153, 255), (153, 204, 255),
    (255, 102, 255), (255, 51, 255), (102, 178, 255), (51, 153, 255), (255, 153, 153), (255, 102, 102),
    (255, 51, 51), (153, 255, 153), (102, 255, 102), (51, 255, 51), (0, 255, 0), (0, 0, 255), (255, 0, 0),
)  # fmt: skip

Rect = tuple[int, int, int, int]  # x1, y1, x2, y2 (exclusive)


@dataclass(frozen=True)
class DrawStyle:
    """Pixel sizes for one image: line thickness, keypoint radius, font scale and text stroke."""

    thick: int
    radius: int
    font_scale: float
    text_thick: int

    @classmethod
    def for_image(cls, h: int, w: int) -> DrawStyle:
        # 1 px up to ~480 px, 2 px at 640-960, 5 px at 1920, 10 px at 4K; text grows at the same rate
        unit = max(h, w) / 400
        thick = max(1, round(unit))
        font_scale = max(0.4, 0.35 * unit)
        return cls(
            thick=thick, radius=thick + 1, font_scale=font_scale, text_thick=max(1, round(font_scale * 1.5))
        )


def _tag(canvas: np.ndarray, text: str, x: int, y: int, style: DrawStyle, fill, ink) -> Rect:
    """Draw `text` on a filled tag whose top-left corner is (x, y), moved inside the image; its rect."""
    h, w = canvas.shape[:2]
    (tw, th), base = cv2.getTextSize(text, _FONT, style.font_scale, style.text_thick)
    pad = style.text_thick + 1
    bw, bh = tw + 2 * pad, th + base + 2 * pad
    x = min(max(0, x), max(0, w - bw))
    y = min(max(0, y), max(0, h - bh))
    cv2.rectangle(canvas, (x, y), (x + bw - 1, y + bh - 1), fill, -1)
    cv2.putText(
        canvas, text, (x + pad, y + pad + th), _FONT, style.font_scale, ink, style.text_thick, cv2.LINE_AA
    )
    return x, y, x + bw, y + bh


def _label_rect(
    canvas: np.ndarray, text: str, box: Rect, style: DrawStyle, avoid: Rect | None
) -> tuple[int, int]:
    """Top-left corner for a score tag: above the box, inside its top edge when there is no room, and
    below `avoid` (the banner) when it would overlap it."""
    (tw, th), base = cv2.getTextSize(text, _FONT, style.font_scale, style.text_thick)
    bh = th + base + 2 * (style.text_thick + 1)
    x, y = box[0], box[1] - bh
    if y < 0:
        y = max(0, box[1])
    if avoid is not None:
        bw = tw + 2 * (style.text_thick + 1)
        if x < avoid[2] and x + bw > avoid[0] and y < avoid[3] and y + bh > avoid[1]:
            y = avoid[3]
    return x, y


def draw_poses(
    image: np.ndarray,
    result: PoseResult,
    kpt_thr: float = 0.5,
    *,
    rgb: bool = False,
    boxes: bool = True,
    label: str | None = None,
) -> np.ndarray:
    """Return a BGR copy of `image` with `result` drawn on it; `label` (e.g. "31.2 FPS") goes top left.

    `image` may be anything the estimator takes (gray, BGRA, RGB with `rgb`).
    """
    canvas = to_bgr(image, rgb=rgb).copy()
    style = DrawStyle.for_image(*canvas.shape[:2])
    # the banner's place is reserved first so score tags can avoid it; it is drawn last, on top
    banner = _tag(canvas.copy(), label, 0, 0, style, BANNER_COLOR, BANNER_TEXT) if label else None
    for det in result:
        if boxes:
            x1, y1, x2, y2 = (round(float(v)) for v in det.box)
            cv2.rectangle(
                canvas, (x1, y1), (x2, y2), BOX_COLOR, style.thick, cv2.LINE_8
            )  # axis-aligned: no AA
        visible = det.keypoints[:, 2] >= kpt_thr  # (K,)
        pts = np.round(det.keypoints[:, :2]).astype(np.int32)  # (K, 2)
        for i, (a, b) in enumerate(result.skeleton):
            if visible[a] and visible[b]:
                color = _LIMB_PALETTE[i % len(_LIMB_PALETTE)]
                cv2.line(
                    canvas, tuple(map(int, pts[a])), tuple(map(int, pts[b])), color, style.thick, cv2.LINE_AA
                )
        for k in np.flatnonzero(visible):
            cv2.circle(canvas, tuple(map(int, pts[k])), style.radius, KEYPOINT_COLOR, -1, cv2.LINE_AA)
    for det in result if boxes else ():  # tags after every skeleton, so no limb crosses a score
        x1, y1, x2, y2 = (round(float(v)) for v in det.box)
        text = f"{det.score:.2f}"
        tx, ty = _label_rect(canvas, text, (x1, y1, x2, y2), style, banner)
        _tag(canvas, text, tx, ty, style, BOX_COLOR, (0, 0, 0))
    if label:
        _tag(canvas, label, 0, 0, style, BANNER_COLOR, BANNER_TEXT)
    return canvas
