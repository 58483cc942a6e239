"""PoseEstimator: image(s) in, people (boxes, scores, keypoints) in original-image pixels out."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from edgepose.defaults import DEPLOY, EVAL
from edgepose.errors import ConfigError
from edgepose.letterbox import LetterboxInfo
from edgepose.runtime.preprocess import preprocess_batch
from edgepose.runtime.results import PoseResult
from edgepose.runtime.session import open_session
from edgepose.runtime.timing import Stopwatch, Timings
from edgepose.spec import (
    DETECTIONS_NAME,
    INPUT_NAME,
    IOU_THR_NAME,
    MAX_DET_NAME,
    NUM_DETS_NAME,
    SCORE_THR_NAME,
    PoseSpec,
)


class PoseEstimator:
    """An end-to-end edgepose ONNX (float or quantized) ready to run on numpy images.

    `threads` sets onnxruntime's intra-op threads (None: its default); `providers` defaults to
    ["CPUExecutionProvider"].
    """

    def __init__(
        self,
        model_path: str | os.PathLike[str],
        threads: int | None = None,
        providers: list[str] | None = None,
    ) -> None:
        self.model_path = Path(model_path)
        self.session, self.spec, self.io = open_session(self.model_path, threads, providers)
        self.last_timings: Timings | None = None

    @property
    def keypoint_names(self) -> tuple[str, ...]:
        return self.spec.keypoint_names

    @property
    def skeleton(self) -> tuple[tuple[int, int], ...]:
        return self.spec.skeleton

    @property
    def batch_size(self) -> int | None:
        """The model's fixed batch size, or None when it takes any batch."""
        return self.io.batch

    def supports_override(self, name: str) -> bool:
        """Whether the graph takes `name` (spec.SCORE_THR_NAME, IOU_THR_NAME, MAX_DET_NAME) at run time."""
        return self.io.has(name)

    def __call__(
        self,
        image: np.ndarray,
        *,
        rgb: bool = False,
        conf: float | None = None,
        iou: float | None = None,
        max_det: int | None = None,
    ) -> PoseResult:
        """Find the people in one image (BGR unless `rgb`; gray, BGRA, uint16 and any size are fine).

        `conf`, `iou`, `max_det` override the model's baked-in thresholds for this call. When the graph
        has no input for one of them, `conf` and `max_det` are applied here in numpy (they can only
        tighten the baked-in values) and `iou` cannot change: NMS ran inside the graph.
        """
        return self.predict_batch([image], rgb=rgb, conf=conf, iou=iou, max_det=max_det)[0]

    def predict_batch(
        self,
        images: Sequence[np.ndarray],
        *,
        rgb: bool = False,
        conf: float | None = None,
        iou: float | None = None,
        max_det: int | None = None,
    ) -> list[PoseResult]:
        """Like calling the estimator on each image, in one run when the batch dim allows.

        A dynamic batch runs all images at once; a fixed batch N runs chunks of N (the last padded);
        the results share one Timings (`batch_size` = len(images)).
        """
        images = list(images)
        if not images:
            return []
        feeds = self.override_feeds(conf, iou, max_det)
        watch = Stopwatch()
        batch, infos = preprocess_batch(images, self.spec, rgb=rgb)  # (N, 3, H, W)
        pre_ms = watch.lap()
        dets, nums = self._run(batch, feeds)  # (N, max_det, 6 + 3K), (N,)
        infer_ms = watch.lap()
        # Numpy fallbacks only where the graph could not take the value itself.
        conf_np = conf if conf is not None and not self.io.has(SCORE_THR_NAME) else None
        max_np = max_det if max_det is not None and not self.io.has(MAX_DET_NAME) else None
        results = [
            self._postprocess(dets[i], int(nums[i]), info, conf_np, max_np) for i, info in enumerate(infos)
        ]
        timings = Timings(pre_ms, infer_ms, watch.lap(), batch_size=len(images))
        self.last_timings = timings
        return [dataclasses.replace(r, timings=timings) for r in results]

    def override_feeds(
        self, conf: float | None, iou: float | None, max_det: int | None
    ) -> dict[str, np.ndarray]:
        """The extra graph inputs for these per-call values; ConfigError when one is out of range."""
        spec = self.spec
        if conf is not None and not 0.0 <= conf <= 1.0:
            raise ConfigError(
                f"score threshold {conf} is outside [0, 1]; "
                f"use e.g. {DEPLOY.conf} (deploy) or {EVAL.conf} (eval)"
            )
        if iou is not None and not 0.0 < iou <= 1.0:
            raise ConfigError(
                f"IoU threshold {iou} is outside (0, 1]; use e.g. {DEPLOY.iou} (the deployment default)"
            )
        if max_det is not None and not 1 <= max_det <= spec.max_det:
            raise ConfigError(
                f"max_det {max_det} is outside [1, {spec.max_det}] (the model outputs {spec.max_det} rows); "
                f"re-export with `edgepose export --max-det {max_det}` for more"
            )
        values: dict[str, tuple[float | int, type]] = {
            SCORE_THR_NAME: (spec.conf_threshold if conf is None else conf, np.float32),
            IOU_THR_NAME: (spec.iou_threshold if iou is None else iou, np.float32),
            MAX_DET_NAME: (spec.max_det if max_det is None else max_det, np.int64),
        }
        given = {SCORE_THR_NAME: conf, IOU_THR_NAME: iou, MAX_DET_NAME: max_det}
        feeds = {}
        for name, shape in self.io.overrides.items():
            if given[name] is not None or name in self.io.required:
                value, dtype = values[name]
                feeds[name] = np.full([1] * len(shape), value, dtype=dtype)  # () or (1,) as declared
        return feeds

    # --- internals ---------------------------------------------------------------------------------------
    def _run(self, batch: np.ndarray, feeds: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        fixed = self.io.batch
        n = batch.shape[0]
        chunk = n if fixed is None else fixed
        dets, nums = [], []
        for start in range(0, n, chunk):
            part = batch[start : start + chunk]
            real = part.shape[0]
            if real < chunk:  # fixed batch: pad the last chunk, drop the padding's outputs
                pad = np.zeros((chunk - real, *part.shape[1:]), part.dtype)
                part = np.concatenate([part, pad])  # (chunk, 3, H, W)
            d, k = self.session.run([DETECTIONS_NAME, NUM_DETS_NAME], {INPUT_NAME: part, **feeds})
            dets.append(d[:real])
            nums.append(np.asarray(k).reshape(-1)[:real])
        return np.concatenate(dets), np.concatenate(nums)  # (N, max_det, 6 + 3K), (N,)

    def _postprocess(
        self, rows: np.ndarray, count: int, info: LetterboxInfo, conf: float | None, max_det: int | None
    ) -> PoseResult:
        spec: PoseSpec = self.spec
        k = spec.num_keypoints
        rows = rows[: max(0, min(count, rows.shape[0]))].astype(np.float32, copy=False)  # (n, 6 + 3K)
        if conf is not None:
            rows = rows[rows[:, 4] >= conf]
        if max_det is not None:
            rows = rows[:max_det]
        n = rows.shape[0]
        boxes = info.to_original(rows[:, :4].reshape(n, 2, 2)).reshape(n, 4)  # (n, 2 corners, xy) -> (n, 4)
        kpts = rows[:, 6 : 6 + 3 * k].reshape(n, k, 3).copy()  # (n, K, xy + conf)
        kpts[..., :2] = info.to_original(kpts[..., :2])
        return PoseResult(
            boxes=boxes,
            scores=rows[:, 4].copy(),
            keypoints=kpts,
            keypoint_names=spec.keypoint_names,
            skeleton=spec.skeleton,
            image_size=info.orig_size,
        )
