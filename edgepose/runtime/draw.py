"""Draw poses with OpenCV: boxes with scores, and skeletons by the paper's rule.

Keypoints whose confidence is below `kpt_thr` (0.5 in YOLO-Pose) are not drawn, nor any limb
touching one: the model marks them as occluded or outside the image.
"""

from __future__ import annotations

import cv2
import numpy as np

from edgepose.runtime.preprocess import to_bgr
from edgepose.runtime.results import PoseResult

BOX_COLOR = (0, 200, 255)  # BGR
_LIMB_PALETTE = (
    (255, 128, 0), (255, 153, 51), (255, 178, 102), (230, 230, 0), (255, 153, 255), (153, 204, 255),
    (255, 102, 255), (255, 51, 255), (102, 178, 255), (51, 153, 255), (255, 153, 153), (255, 102, 102),
    (255, 51, 51), (153, 255, 153), (102, 255, 102), (51, 255, 51), (0, 255, 0), (0, 0, 255), (255, 0, 0),
)  # fmt: skip


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
    h, w = canvas.shape[:2]
    thick = max(1, round(min(h, w) / 200))  # lines stay visible on large images, thin on small ones
    radius = thick + 1
    for det in result:
        if boxes:
            x1, y1, x2, y2 = (round(float(v)) for v in det.box)
            cv2.rectangle(canvas, (x1, y1), (x2, y2), BOX_COLOR, thick, cv2.LINE_8)  # axis-aligned: no AA
            cv2.putText(
                canvas, f"{det.score:.2f}", (x1, max(y1 - 3, 10)), cv2.FONT_HERSHEY_SIMPLEX,
                0.35 * thick + 0.1, BOX_COLOR, max(1, thick // 2), cv2.LINE_AA,
            )  # fmt: skip
        visible = det.keypoints[:, 2] >= kpt_thr  # (K,)
        pts = np.round(det.keypoints[:, :2]).astype(np.int32)  # (K, 2)
        for i, (a, b) in enumerate(result.skeleton):
            if visible[a] and visible[b]:
                color = _LIMB_PALETTE[i % len(_LIMB_PALETTE)]
                cv2.line(canvas, tuple(map(int, pts[a])), tuple(map(int, pts[b])), color, thick, cv2.LINE_AA)
        for k in np.flatnonzero(visible):
            cv2.circle(canvas, tuple(map(int, pts[k])), radius, (0, 0, 255), -1, cv2.LINE_AA)
    if label:
        cv2.putText(canvas, label, (5, 15), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 255, 0), 1, cv2.LINE_AA)
    return canvas
