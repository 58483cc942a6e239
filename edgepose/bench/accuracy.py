"""COCO OKS accuracy of one model on a val set, streamed through the runtime, image by image.

A folder of images without annotations is a val set too (`ValSet.labelled` False): every model still runs
on every image, so latency and fidelity to float (edgepose.bench.fidelity, which needs no labels) are
measured, and the AP columns say n/a. That is how a user benches variants on their own camera frames.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgepose.bench.cocostream import StreamingKeypointEval
from edgepose.bench.intervals import ImageEvals
from edgepose.bench.progress import StageProgress
from edgepose.cocofmt import detections_to_coco
from edgepose.data.coco import read_coco
from edgepose.data.coco_eval import KeypointMetrics
from edgepose.data.convert import coco_json
from edgepose.data.types import ImageRecord, PoseDataset
from edgepose.errors import ConfigError, DataError
from edgepose.runtime.estimator import PoseEstimator
from edgepose.runtime.results import PoseResult
from edgepose.runtime.sources import read_image
from edgepose.spec import ANNOTATIONS_FILE, IMAGE_PATTERNS, image_files

# COCOeval scores keypoints with maxDets=[20] and drops the rest per image: keeping only the 20 best
# detections of each image gives identical metrics and bounds the memory per image.
COCO_KPT_MAX_DETS = 20
OnImage = Callable[[int, PoseResult], None]  # (image index, detections in original pixels)


@dataclass(frozen=True)
class ValSet:
    """The val annotations (or, unlabelled, just the images); images are read lazily, by path."""

    dataset: PoseDataset
    source: Path
    labelled: bool = True  # False: a plain image folder, no AP (fidelity and latency only)

    def __len__(self) -> int:
        return len(self.dataset)

    def size_counts(self) -> dict[str, int]:
        """How many val images have each size, `"HxW" -> count`, the most common first (from the
        annotation file, or for an image folder from the images themselves)."""
        counts = Counter(f"{r.height}x{r.width}" for r in self.dataset.records)
        return dict(counts.most_common())


def load_val(data: str | os.PathLike[str], num_images: int | None = None) -> ValSet:
    """A COCO keypoints JSON, a folder holding ANNOTATIONS_FILE (+ images/), or a folder of unlabelled
    images (or FOLDER/images): the first `num_images`."""
    path = Path(data)
    json_path = coco_json(path)
    if num_images is not None and num_images < 1:
        raise ConfigError(f"--num-images must be >= 1, got {num_images}")
    if json_path.is_dir():  # no annotations: the images alone (fidelity and latency, no AP)
        dataset = _image_folder(path, num_images)
        return ValSet(dataset, path, labelled=False)
    if not json_path.is_file():
        raise DataError(
            f"--data {path}: no such file or folder; pass a COCO keypoints JSON, its folder, or a folder "
            "of images"
        )
    dataset = read_coco(json_path)
    if num_images is not None:
        dataset = PoseDataset(
            dataset.image_dir, dataset.records[:num_images], dataset.keypoint_names, dataset.skeleton
        )
    if not len(dataset):
        raise DataError(f"{json_path}: the val set has no images; pass a COCO keypoints JSON with images")
    return ValSet(dataset, json_path)


def _image_folder(folder: Path, num_images: int | None) -> PoseDataset:
    """The images of `folder` (or `folder/images`), sorted by name, as records without people. Each is
    decoded once here: its size (the letterbox note reports it), and a corrupt file fails now, before
    any export or quantization."""
    root = folder / "images" if (folder / "images").is_dir() else folder
    try:
        files = image_files(root)
    except OSError as exc:
        raise DataError(
            f"--data {root}: cannot read the folder ({exc.strerror}); check its permissions"
        ) from exc
    if not files:
        raise DataError(
            f"--data {folder}: no {ANNOTATIONS_FILE} and no images (looked for "
            f"{IMAGE_PATTERNS}); pass a COCO keypoints JSON, its folder, or a "
            "folder of images"
        )
    records = []
    for i, f in enumerate(files[:num_images]):
        h, w = read_image(f).shape[:2]  # DataError naming the file if it is not an image
        records.append(ImageRecord(image_id=i + 1, file_name=f.name, width=w, height=h))
    return PoseDataset(root, records)


@dataclass(frozen=True)
class Accuracy:
    metrics: KeypointMetrics | None  # None: an unlabelled val set (no AP)
    num_images: int
    num_detections: int  # kept for scoring (at most COCO_KPT_MAX_DETS per image)
    image_evals: ImageEvals | None = None  # per-image scoring at area 'all' (intervals); None: unlabelled


def evaluate(
    estimator: PoseEstimator,
    val: ValSet,
    *,
    conf: float | None,
    iou: float | None,
    max_det: int | None,
    progress: StageProgress | None = None,
    on_image: OnImage | None = None,
) -> Accuracy:
    """Run every val image through `estimator` and score the detections with pycocotools.

    Images are read one at a time and scored in chunks (edgepose.bench.cocostream), so memory stays
    flat however many images the val set has. `on_image` sees every image's detections (fidelity).
    """
    scorer = StreamingKeypointEval(val.dataset) if val.labelled else None
    kept = 0  # detections scored (at most COCO_KPT_MAX_DETS per image)
    for i, rec in enumerate(val.dataset.records):
        res = estimator(read_image(val.dataset.image_path(rec)), conf=conf, iou=iou, max_det=max_det)
        if on_image is not None:
            on_image(i, res)
        top = np.argsort(-res.scores, kind="stable")[:COCO_KPT_MAX_DETS]
        if scorer is not None:
            scorer.add(
                rec, detections_to_coco(rec.image_id, res.boxes[top], res.scores[top], res.keypoints[top])
            )
        kept += len(top)
        if progress:
            progress(i + 1, len(val))
    if scorer is None:
        return Accuracy(None, len(val), kept)
    return Accuracy(scorer.metrics(), len(val), kept, scorer.image_evals())
