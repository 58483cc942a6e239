"""COCO keypoints JSON reader/writer: round trip and one-line errors naming the file and the record."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from edgepose.data.coco import dataset_to_coco_dict, read_coco, write_coco
from edgepose.data.types import ImageRecord, PoseDataset
from edgepose.errors import DataError
from edgepose.spec import COCO_KEYPOINTS, COCO_SKELETON


def test_read_synth_dataset(synth_dataset: Path) -> None:
    ds = read_coco(synth_dataset / "annotations.json")
    raw = json.loads((synth_dataset / "annotations.json").read_text())
    assert ds.image_dir == synth_dataset / "images"
    assert len(ds) == 12 and ds.keypoint_names == COCO_KEYPOINTS and ds.skeleton == COCO_SKELETON
    assert sum(r.num_people for r in ds.records) == len(raw["annotations"])
    a0 = raw["annotations"][0]
    rec = next(r for r in ds.records if r.image_id == a0["image_id"])
    np.testing.assert_allclose(rec.keypoints[0].ravel(), a0["keypoints"])
    x, y, w, h = a0["bbox"]
    np.testing.assert_allclose(rec.boxes[0], [x, y, x + w, y + h], atol=1e-4)
    assert rec.areas[0] == pytest.approx(a0["area"])
    assert all(ds.image_path(r).is_file() for r in ds.records)


def test_round_trip_preserves_everything(tmp_path: Path) -> None:
    rng = np.random.default_rng(120)
    kp = np.concatenate([rng.uniform(0, 100, (3, 17, 2)), rng.integers(0, 3, (3, 17, 1))], 2).astype(
        np.float32
    )
    kp[kp[..., 2] == 0] = 0
    recs = [
        ImageRecord(5, "a.jpg", 100, 80, np.array([[1, 2, 30, 40], [10, 10, 50, 70.5]], np.float32), kp[:2],
                    np.array([500, 1200.25], np.float32), np.array([0, 1])),
        ImageRecord(9, "b.jpg", 64, 64),
        ImageRecord(7, "sub/c.png", 64, 48, np.array([[0, 0, 8, 8]], np.float32), kp[2:],
                    np.array([40.0], np.float32), np.array([0])),
    ]  # fmt: skip
    ds = PoseDataset(tmp_path, recs)
    out = write_coco(ds, tmp_path / "gt.json")
    back = read_coco(out, image_dir=tmp_path)
    assert [r.image_id for r in back.records] == [5, 9, 7]
    for a, b in zip(recs, back.records, strict=True):
        assert (a.file_name, a.width, a.height) == (b.file_name, b.width, b.height)
        np.testing.assert_allclose(b.boxes, a.boxes, atol=0.006)
        np.testing.assert_allclose(b.keypoints, a.keypoints, atol=0.006)
        np.testing.assert_allclose(b.areas, a.areas, atol=0.006)
        np.testing.assert_array_equal(b.iscrowd, a.iscrowd)
    assert dataset_to_coco_dict(back) == json.loads(out.read_text())
    assert back.image_dir == tmp_path
    assert read_coco(out).image_dir == tmp_path  # no images/ folder beside it: the JSON's folder


def _write(path: Path, data: object) -> Path:
    path.write_text(json.dumps(data))
    return path


def _valid() -> dict:
    kp = [10, 10, 2] * 17
    return {
        "images": [{"id": 1, "file_name": "x.jpg", "width": 64, "height": 64}],
        "annotations": [
            {"id": 7, "image_id": 1, "category_id": 1, "bbox": [1, 1, 20, 20], "area": 100, "keypoints": kp}
        ],
        "categories": [
            {"id": 1, "name": "person", "keypoints": list(COCO_KEYPOINTS), "skeleton": [[16, 14]]}
        ],
    }


def test_valid_minimal_file(tmp_path: Path) -> None:
    ds = read_coco(_write(tmp_path / "ok.json", _valid()))
    assert ds.skeleton == ((15, 13),)  # 1-based in the file, 0-based inside
    assert ds.records[0].keypoints.shape == (1, 17, 3)


def _bad(mutate) -> dict:
    d = _valid()
    mutate(d)
    return d


@pytest.mark.parametrize(
    ("data", "needles"),
    [
        (_bad(lambda d: d["annotations"][0].pop("keypoints")), ["annotation 7", "no 'keypoints'"]),
        (_bad(lambda d: d["annotations"][0].update(keypoints=[1, 1, 2] * 16)), ["annotation 7", "48", "51"]),
        (_bad(lambda d: d["annotations"][0].update(image_id=3)), ["annotation 7", "image id 3"]),
        (
            _bad(lambda d: d["annotations"][0].update(keypoints=[1, 1, 5] * 17)),
            ["annotation 7", "visibility 5"],
        ),
        (_bad(lambda d: d["annotations"][0].update(bbox=[1, 2])), ["annotation 7", "bbox"]),
        (
            _bad(lambda d: d["annotations"][0].update(keypoints=["a", 1, 2] * 17)),
            ["annotation 7", "non-numeric"],
        ),
        (_bad(lambda d: d.pop("annotations")), ["no 'annotations'"]),
        (_bad(lambda d: d.pop("images")), ["no 'images'"]),
        (_bad(lambda d: d["images"][0].pop("width")), ["images[0]", "'width'"]),
        ([1, 2], ["expected a COCO JSON object"]),
    ],
)
def test_bad_files_raise_one_line_data_error(tmp_path: Path, data: object, needles: list[str]) -> None:
    path = _write(tmp_path / "bad.json", data)
    with pytest.raises(DataError) as info:
        read_coco(path)
    msg = str(info.value)
    assert "\n" not in msg and str(path) in msg
    for needle in needles:
        assert needle in msg


def test_missing_file_and_invalid_json(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"nope\.json: annotation file not found"):
        read_coco(tmp_path / "nope.json")
    bad = tmp_path / "broken.json"
    bad.write_text('{"images": [\n  {"id": 1,,}]}')
    with pytest.raises(DataError, match=r"broken\.json: invalid JSON at line 2 column"):
        read_coco(bad)


def test_coco_json_names_a_dataset_folders_annotations(synth_dataset: Path, tmp_path: Path) -> None:
    from edgepose.data.convert import coco_json
    from edgepose.spec import ANNOTATIONS_FILE

    assert coco_json(synth_dataset) == synth_dataset / ANNOTATIONS_FILE
    assert coco_json(str(synth_dataset / ANNOTATIONS_FILE)) == synth_dataset / ANNOTATIONS_FILE
    assert coco_json(tmp_path) == tmp_path  # no annotations: the reader says what is missing
    assert coco_json(tmp_path / "nope.json") == tmp_path / "nope.json"
