"""edgepose.bench.intervals: AP of image multisets from per-image COCOeval results, pooling, bootstrap ΔAP.

A hand-built, seeded COCO set (no images on disk): 16 images of 1-3 people, detections = the people with
keypoint noise plus a false positive on some images.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edgepose.bench.cocostream import StreamingKeypointEval
from edgepose.bench.intervals import ImageEvals, bootstrap_delta_ap, pool
from edgepose.cocofmt import detections_to_coco
from edgepose.data.coco import dataset_to_coco_dict
from edgepose.data.coco_eval import evaluate_keypoints
from edgepose.data.types import ImageRecord, PoseDataset
from edgepose.errors import ConfigError

K = 17
SIZE = 200
Detections = dict[int, list[dict]]  # image id -> COCO results dicts


def _dataset(n: int = 16, seed: int = 7) -> PoseDataset:
    rng = np.random.default_rng(seed)
    records = []
    for i in range(n):
        m = int(rng.integers(1, 4))
        x1 = rng.uniform(0, 100, (m, 2))  # (M, 2) top-left corners
        wh = rng.uniform(40, 90, (m, 2))  # (M, 2)
        boxes = np.concatenate([x1, x1 + wh], 1).astype(np.float32)  # (M, 4)
        u = rng.uniform(0, 1, (m, K, 2))  # (M, K, 2) position inside the box
        xy = x1[:, None] + u * wh[:, None]  # (M, K, 2)
        kpts = np.concatenate([xy, np.full((m, K, 1), 2.0)], 2).astype(np.float32)  # (M, K, 3)
        areas = (wh[:, 0] * wh[:, 1]).astype(np.float32)  # (M,)
        records.append(
            ImageRecord(i + 1, f"{i:03d}.jpg", SIZE, SIZE, boxes, kpts, areas, np.zeros(m, np.int64))
        )
    return PoseDataset(Path("."), records)


def _detections(ds: PoseDataset, seed: int = 1, noise: float = 3.0) -> Detections:
    rng = np.random.default_rng(seed)
    out = {}
    for rec in ds.records:
        kpts = rec.keypoints.copy()  # (N, K, 3)
        kpts[..., :2] += rng.normal(0, noise, (rec.num_people, K, 2))
        kpts[..., 2] = 0.9
        boxes, scores = rec.boxes, rng.uniform(0.3, 1.0, rec.num_people)
        if rec.image_id % 3 == 0:  # a false positive
            kpts = np.concatenate([kpts, rng.uniform(0, SIZE, (1, K, 3))])
            boxes = np.concatenate([boxes, [[0.0, 0.0, 50.0, 50.0]]])
            scores = np.append(scores, rng.uniform(0.3, 1.0))
        out[rec.image_id] = detections_to_coco(rec.image_id, boxes, scores, kpts)
    return out


def _evals(ds: PoseDataset, dets: Detections) -> ImageEvals:
    scorer = StreamingKeypointEval(ds, chunk_images=5)  # as the bench scores: in chunks
    for rec in ds.records:
        scorer.add(rec, dets[rec.image_id])
    evals = scorer.image_evals()
    assert evals is not None
    return evals


def _coco_ap(ds: PoseDataset, dets: Detections) -> float:
    return evaluate_keypoints(dataset_to_coco_dict(ds), [d for ds_ in dets.values() for d in ds_]).ap


def _moved(dets: Detections, image_id: int, dx: float = 40.0) -> Detections:
    """`dets` with the first person of `image_id` shifted by `dx` px: a hit becomes a miss."""
    out = {i: [dict(d) for d in v] for i, v in dets.items()}
    kp = np.asarray(out[image_id][0]["keypoints"]).reshape(K, 3)  # (K, 3)
    kp[:, 0] += dx
    out[image_id][0]["keypoints"] = kp.reshape(-1).tolist()
    return out


def test_ap_over_all_images_equals_cocoeval() -> None:
    ds = _dataset()
    dets = _detections(ds)
    expected = _coco_ap(ds, dets)
    assert 0.2 < expected < 0.95  # a non-trivial AP, so equality means something
    assert _evals(ds, dets).ap() == expected


def test_an_image_drawn_twice_scores_as_a_copy_of_it_with_a_new_id() -> None:
    """What a bootstrap resample means: a duplicated image counts its people and detections twice."""
    ds = _dataset()
    dets = _detections(ds)
    evals = _evals(ds, dets)
    drawn = [1, 2, 2, 5, 9, 9, 9, 12]
    copies, copy_dets = [], {}
    for j, i in enumerate(drawn):
        rec = ds.records[i - 1]
        new_id = 100 + j
        copies.append(ImageRecord(new_id, rec.file_name, rec.width, rec.height, rec.boxes, rec.keypoints,
                                  rec.areas, rec.iscrowd))  # fmt: skip
        copy_dets[new_id] = [dict(d, image_id=new_id) for d in dets[i]]
    expected = _coco_ap(PoseDataset(Path("."), copies), copy_dets)
    assert evals.ap(drawn) == pytest.approx(expected, abs=1e-12)


def test_folds_pooled_equal_one_evaluation_of_all_images() -> None:
    ds = _dataset()
    dets = _detections(ds)
    half = len(ds.records) // 2
    parts = [_evals(PoseDataset(ds.image_dir, recs), dets) for recs in (ds.records[:half], ds.records[half:])]
    pooled = pool(parts)
    assert pooled.image_ids == [r.image_id for r in ds.records]
    assert pooled.ap() == _coco_ap(ds, dets)
    with pytest.raises(ConfigError, match="in two of the evaluations pooled"):
        pool([parts[0], parts[0]])


def test_identical_detections_give_exactly_zero() -> None:
    ds = _dataset()
    dets = _detections(ds)
    (d,) = bootstrap_delta_ap(_evals(ds, dets), [_evals(ds, dets)], resamples=200)
    assert (d.delta, d.low, d.high) == (0.0, 0.0, 0.0)
    assert d.images == len(ds.records) and d.resamples == 200


def test_one_person_moved_lowers_ap_inside_its_interval_and_is_seeded() -> None:
    ds = _dataset()
    dets = _detections(ds)
    base, worse = _evals(ds, dets), _evals(ds, _moved(dets, image_id=4))
    (d,) = bootstrap_delta_ap(base, [worse], resamples=300, seed=3)
    assert d.delta == pytest.approx(_coco_ap(ds, _moved(dets, 4)) - _coco_ap(ds, dets), abs=1e-12)
    assert d.delta < 0
    assert d.low < 0 and d.low <= d.delta <= d.high <= 0  # a lost person never helps a resample
    assert bootstrap_delta_ap(base, [worse], resamples=300, seed=3) == [d]
    (other,) = bootstrap_delta_ap(base, [worse], resamples=300, seed=4)
    assert (other.low, other.high) != (d.low, d.high)


def test_mismatched_images_and_bad_options_are_refused() -> None:
    ds = _dataset()
    dets = _detections(ds)
    evals = _evals(ds, dets)
    with pytest.raises(ConfigError, match="compare results of the same images"):
        bootstrap_delta_ap(evals, [evals.subset(evals.image_ids[:5])])
    with pytest.raises(ConfigError, match="resamples >= 1"):
        bootstrap_delta_ap(evals, [evals], resamples=0)
