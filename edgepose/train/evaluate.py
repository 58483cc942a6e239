"""Validation of a PoseModel on a PoseDataset: letterbox -> model -> decode -> NMS -> original pixels
-> COCO results -> OKS AP (pycocotools, through edgepose.data.coco_eval)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from edgepose.data.types import ImageRecord, PoseDataset
from edgepose.defaults import EVAL, LETTERBOX_COLOR
from edgepose.letterbox import LetterboxInfo
from edgepose.nms import nms  # greedy NMS with onnxruntime's rules; no torchvision here
from edgepose.nn.config import HeadKind
from edgepose.nn.decode import decode
from edgepose.nn.model import PoseModel
from edgepose.runtime.preprocess import preprocess_batch
from edgepose.spec import PoseSpec
from edgepose.topk import topk_select
from edgepose.train.dataset import read_rgb

PRE_NMS_TOPK = 1000  # bounds the greedy NMS below on an untrained model that scores everything


def postprocess(
    boxes: np.ndarray,
    scores: np.ndarray,
    kpts: np.ndarray,
    conf_thr: float = EVAL.conf,
    iou_thr: float = EVAL.iou,
    max_det: int = EVAL.max_det,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One image's decoded candidates (N, 4), (N,), (N, K, 3) -> kept detections, best first."""
    idx = np.nonzero(scores > conf_thr)[0]
    if idx.size > PRE_NMS_TOPK:
        idx = idx[np.argsort(-scores[idx], kind="stable")[:PRE_NMS_TOPK]]
    keep = idx[nms(boxes[idx], scores[idx], iou_thr)][:max_det]
    return boxes[keep], scores[keep], kpts[keep]


def _decode(model: PoseModel, raw: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Boxes (B, N, 4), scores (B, N), keypoints (B, N, K, 3) of either head (ER-Pose: edgepose.nn.erpose)."""
    if getattr(model.cfg, "head", None) is HeadKind.ERPOSE:
        from edgepose.nn.erpose import decode_erpose

        return decode_erpose(raw, model.strides)
    return decode(raw, model.anchors, model.strides)


def _select(
    model: PoseModel, boxes: np.ndarray, scores: np.ndarray, kpts: np.ndarray, conf_thr: float, iou_thr: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One image's kept detections: NMS for YOLO-Pose, the NMS-free top-k for ER-Pose (edgepose.topk)."""
    if getattr(model.cfg, "head", None) is HeadKind.ERPOSE:
        keep = topk_select(scores, conf_thr, EVAL.max_det)
        return boxes[keep], scores[keep], kpts[keep]
    return postprocess(boxes, scores, kpts, conf_thr, iou_thr)


def _batches(
    data: PoseDataset, spec: PoseSpec, batch: int
) -> Iterator[tuple[list[ImageRecord], torch.Tensor, list[LetterboxInfo]]]:
    """The runtime's own preprocessing (letterbox -> RGB -> CHW -> [0, 1]), a batch at a time."""
    records = data.records
    for start in range(0, len(records), batch):
        recs = records[start : start + batch]
        images = [read_rgb(str(data.image_path(rec))) for rec in recs]
        batch_x, infos = preprocess_batch(images, spec, rgb=True)  # (B, 3, S, S) float32
        x = torch.from_numpy(batch_x)
        # NHWC (channels_last), as training runs the model: the same conv kernels, the same numbers
        yield recs, x.contiguous(memory_format=torch.channels_last), infos


@torch.no_grad()
def predict_coco(
    model: PoseModel,
    data: PoseDataset,
    size: int,
    *,
    batch: int = 16,
    conf_thr: float = EVAL.conf,
    iou_thr: float = EVAL.iou,
    letterbox_color: int = LETTERBOX_COLOR,
    progress: Callable[[int], None] | None = None,
) -> list[dict[str, Any]]:
    """COCO keypoint results (original-image pixels) for every image of `data`."""
    from edgepose.cocofmt import detections_to_coco

    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    results: list[dict[str, Any]] = []
    done = 0
    try:
        spec = PoseSpec(input_size=(size, size), letterbox_color=letterbox_color)  # float input
        for recs, x, infos in _batches(data, spec, batch):
            raw = model(x.to(device))
            boxes, scores, kpts = (t.float().cpu().numpy() for t in _decode(model, raw))
            for j, (rec, info) in enumerate(zip(recs, infos, strict=True)):
                b, s, k = _select(model, boxes[j], scores[j], kpts[j], conf_thr, iou_thr)
                b = info.to_original(b.reshape(-1, 2, 2)).reshape(-1, 4)  # (n, 4)
                k = np.concatenate((info.to_original(k[..., :2]), k[..., 2:]), -1)  # (n, K, 3)
                results.extend(detections_to_coco(rec.image_id, b, s, k))
            done += len(recs)
            if progress is not None:
                progress(done)
    finally:
        model.train(was_training)
    return results


def subset(data: PoseDataset, max_images: int | None) -> PoseDataset:
    """The first `max_images` images (all when None)."""
    if max_images is None or max_images >= len(data):
        return data
    return PoseDataset(data.image_dir, data.records[:max_images], data.keypoint_names, data.skeleton)


def evaluate_model(
    model: PoseModel,
    data: PoseDataset,
    size: int,
    *,
    batch: int = 16,
    max_images: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> dict[str, float]:
    """OKS metrics (ap, ap50, ap75, apm, apl, ar) of `model` on (the first `max_images` of) `data`."""
    from edgepose.data.coco import dataset_to_coco_dict
    from edgepose.data.coco_eval import evaluate_keypoints

    part = subset(data, max_images)
    preds = predict_coco(model, part, size, batch=batch, progress=progress)
    return dict(evaluate_keypoints(dataset_to_coco_dict(part), preds).as_dict())


def predict_checkpoint(
    path: str | Path,
    data: PoseDataset,
    *,
    size: int | None = None,
    batch: int = 16,
    device: str = "cpu",
    progress: Callable[[int], None] | None = None,
) -> list[dict[str, Any]]:
    """COCO keypoint results of the checkpoint at `path` on `data`, at its spec's input size by default;
    `progress(images done)` after each batch."""
    import torch

    from edgepose.nn.checkpoint import load_checkpoint

    ck = load_checkpoint(path, map_location=device)
    with torch.inference_mode():
        return predict_coco(
            ck.model,
            data,
            size or ck.spec.input_size[0],
            batch=batch,
            letterbox_color=ck.spec.letterbox_color,
            progress=progress,
        )
