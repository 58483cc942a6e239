"""COCO OKS keypoint AP over any number of images in bounded memory, with pycocotools doing the scoring.

Why not one `evaluate_keypoints` call at the end: it needs every prediction as a Python dict at once
(about 100 kB per image with 20 detections: 430 MB more at 5,000 images, measured). COCOeval scores each
image on its own (`evaluate`) and only then pools them (`accumulate`), so we run `evaluate` per chunk of
images, keep the few small arrays `accumulate` reads, and pool everything once at the end. The result
equals `edgepose.data.coco_eval.evaluate_keypoints` on the whole set (a test checks it to the bit).
"""

from __future__ import annotations

import contextlib
import copy
import io

import numpy as np

from edgepose.bench.intervals import ImageEvals
from edgepose.data.coco import dataset_to_coco_dict
from edgepose.data.coco_eval import KeypointMetrics
from edgepose.data.types import ImageRecord, PoseDataset
from edgepose.spec import sigmas_for

CHUNK_IMAGES = 200
_KEEP = ("dtIgnore", "gtIgnore")  # with dtMatches and dtScores: all that COCOeval.accumulate reads


class StreamingKeypointEval:
    """Feed each image's COCO result dicts with `add`; `metrics()` scores them all."""

    def __init__(self, dataset: PoseDataset, chunk_images: int = CHUNK_IMAGES) -> None:
        self.dataset = dataset
        self.chunk_images = chunk_images
        self._records: list[ImageRecord] = []
        self._dets: list[dict] = []
        self._per_area: list[dict[int, dict | None]] | None = None  # area range -> image id -> evalImg
        self._params = None
        self.num_detections = 0

    def add(self, record: ImageRecord, detections: list[dict]) -> None:
        self._records.append(record)
        self._dets.extend(detections)
        self.num_detections += len(detections)
        if len(self._records) >= self.chunk_images:
            self._flush()

    def _flush(self) -> None:
        from pycocotools.coco import COCO
        from pycocotools.cocoeval import COCOeval

        if not self._records:
            return
        d = self.dataset
        gt = dataset_to_coco_dict(PoseDataset(d.image_dir, self._records, d.keypoint_names, d.skeleton))
        with contextlib.redirect_stdout(io.StringIO()):
            coco_gt = COCO()
            coco_gt.dataset = gt
            coco_gt.createIndex()
            if self._dets:
                coco_dt = coco_gt.loadRes(self._dets)
            else:  # loadRes rejects an empty list; an empty result set scores the same
                coco_dt = COCO()
                coco_dt.dataset = {"images": gt["images"], "annotations": [], "categories": gt["categories"]}
                coco_dt.createIndex()
            ev = COCOeval(coco_gt, coco_dt, iouType="keypoints")
            ev.params.kpt_oks_sigmas = np.array(sigmas_for(d.keypoint_names))
            ev.evaluate()
        # evaluate() sorted p.imgIds; evalImgs is [category][area range][image], one category (person)
        p = ev.params
        n_img, n_area = len(p.imgIds), len(p.areaRng)
        if self._per_area is None:
            self._per_area = [{} for _ in range(n_area)]
            self._params = p
        for a in range(n_area):
            for i, image_id in enumerate(p.imgIds):
                e = ev.evalImgs[a * n_img + i]
                if e is not None:  # only what accumulate reads, as compact arrays (matches: booleans)
                    e = {k: e[k] for k in _KEEP} | {
                        "dtMatches": e["dtMatches"] != 0,
                        "dtScores": np.asarray(e["dtScores"], np.float64),
                    }
                self._per_area[a][image_id] = e
        self._records, self._dets = [], []

    def image_evals(self) -> ImageEvals | None:
        """The per-image results of everything added, at area range 'all' (pooling, bootstrap intervals:
        edgepose.bench.intervals); None when nothing was added."""
        self._flush()
        if self._per_area is None:
            return None
        return ImageEvals.from_cocoeval(self._params, self._per_area)

    def metrics(self) -> KeypointMetrics:
        """COCO keypoint metrics of everything added (all zeros when nothing was detected at all)."""
        from pycocotools.cocoeval import COCOeval

        self._flush()
        if self.num_detections == 0 or self._per_area is None:
            return KeypointMetrics(0.0, 0.0, 0.0, 0.0, 0.0, 0.0)
        ev = COCOeval(iouType="keypoints")
        p = copy.deepcopy(self._params)
        p.imgIds = sorted(self._per_area[0])
        ev.params = p
        ev._paramsEval = copy.deepcopy(p)
        ev.evalImgs = [area[i] for area in self._per_area for i in p.imgIds]
        with contextlib.redirect_stdout(io.StringIO()):
            ev.accumulate()
            ev.summarize()
        s = [float(v) for v in ev.stats]
        return KeypointMetrics(ap=s[0], ap50=s[1], ap75=s[2], apm=s[3], apl=s[4], ar=s[5])
