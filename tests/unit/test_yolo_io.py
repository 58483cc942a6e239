"""YOLO-pose reader/writer, COCO <-> YOLO conversion, and the preview drawing."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from edgepose.data.coco import read_coco
from edgepose.data.convert import DataFormat, convert, detect_format
from edgepose.data.preview import CENTRE, LEFT, RIGHT, limb_colour, preview_grid
from edgepose.data.types import ImageRecord, PoseDataset
from edgepose.data.yolo import read_yolo, write_yolo
from edgepose.errors import DataError


def _by_name(ds: PoseDataset) -> dict[str, ImageRecord]:
    return {Path(r.file_name).name: r for r in ds.records}


def assert_same_people(a: PoseDataset, b: PoseDataset) -> None:
    """Same images, same people in the same order: boxes and labelled keypoints within 0.5 px, v exact."""
    ra, rb = _by_name(a), _by_name(b)
    assert sorted(ra) == sorted(rb)
    for name, x in ra.items():
        y = rb[name]
        assert (x.width, x.height) == (y.width, y.height)
        assert x.keypoints.shape == y.keypoints.shape, name
        np.testing.assert_array_equal(x.keypoints[..., 2], y.keypoints[..., 2])
        labelled = x.keypoints[..., 2] > 0  # (N, K); v=0 keypoints carry no position
        np.testing.assert_allclose(x.keypoints[labelled][:, :2], y.keypoints[labelled][:, :2], atol=0.5)
        np.testing.assert_allclose(x.boxes, y.boxes, atol=0.5)


def test_coco_yolo_coco_round_trip(synth_dataset: Path, tmp_path: Path) -> None:
    original = read_coco(synth_dataset / "annotations.json")
    assert sum(r.num_people for r in original.records) > 0
    assert any((r.keypoints[..., 2] == 1).any() for r in original.records)  # occluded joints are exercised

    yolo_dir = convert(synth_dataset, tmp_path / "yolo", DataFormat.YOLO)
    assert detect_format(yolo_dir)[0] is DataFormat.YOLO
    assert "kpt_shape: [17, 3]" in (yolo_dir / "data.yaml").read_text()
    as_yolo = read_yolo(yolo_dir)
    assert_same_people(original, as_yolo)

    coco_dir = convert(yolo_dir, tmp_path / "coco", DataFormat.COCO)
    back = read_coco(coco_dir / "annotations.json")
    assert_same_people(original, back)
    # YOLO keeps no image ids: numeric stems become the ids; images are the same bytes, not re-encoded.
    assert sorted(r.image_id for r in back.records) == sorted(
        int(Path(r.file_name).stem) for r in original.records
    )
    for rec in original.records:
        assert (coco_dir / "images" / Path(rec.file_name).name).read_bytes() == original.image_path(
            rec
        ).read_bytes()
    # YOLO has no segmentation area: COCO areas from YOLO are the box areas.
    for rec in back.records:
        w, h = rec.boxes[:, 2] - rec.boxes[:, 0], rec.boxes[:, 3] - rec.boxes[:, 1]
        np.testing.assert_allclose(rec.areas, w * h, rtol=1e-3, atol=0.05)


def _yolo_dataset(root: Path, lines: dict[str, str], size: tuple[int, int] = (64, 96)) -> Path:
    """A YOLO-pose folder with one grey PNG per stem and the given label text."""
    (root / "images").mkdir(parents=True)
    (root / "labels").mkdir()
    for stem, text in lines.items():
        cv2.imwrite(str(root / "images" / f"{stem}.png"), np.full((*size, 3), 90, np.uint8))
        (root / "labels" / f"{stem}.txt").write_text(text)
    return root


def _line(kpt_values: list[float], box: str = "0.5 0.5 0.5 0.5") -> str:
    return "0 " + box + " " + " ".join(f"{v:g}" for v in kpt_values)


def test_read_yolo_pixels_visibility_and_two_value_variant(tmp_path: Path) -> None:
    three = [0.25, 0.5, 2, 0.75, 0.25, 1] + [0, 0, 0] * 15
    two = [0.5, 0.5] + [0, 0] * 16
    root = _yolo_dataset(tmp_path / "y", {"a": _line(three) + "\n\n" + _line(two) + "\n", "b": ""})
    ds = read_yolo(root)
    assert [r.file_name for r in ds.records] == ["a.png", "b.png"]
    assert [r.image_id for r in ds.records] == [1, 2]  # non-numeric stems: 1..N in name order
    a = ds.records[0]
    assert (a.width, a.height, a.num_people, ds.records[1].num_people) == (96, 64, 2, 0)
    np.testing.assert_allclose(a.boxes[0], [24, 16, 72, 48])
    np.testing.assert_allclose(a.keypoints[0, :2], [[24, 32, 2], [72, 16, 1]])
    assert a.keypoints[0, 2:, 2].tolist() == [0] * 15
    # x y only: (0, 0) is unlabelled, anything else visible.
    np.testing.assert_allclose(a.keypoints[1, 0], [48, 32, 2])
    assert a.keypoints[1, 1:, 2].tolist() == [0] * 16
    np.testing.assert_allclose(a.areas, [48 * 32, 48 * 32])


@pytest.mark.parametrize(
    ("text", "match"),
    [
        (_line([0.5, 0.5, 2] * 16), r"labels/a.txt:2: 53 values, expected 56 .* or 39"),
        (_line([0.5, 0.5, 2] * 16) + " 0.5 x 2", r"labels/a.txt:2: non-numeric value"),
        (_line([0.5, 0.5, 3] * 17), r"labels/a.txt:2: keypoint visibility 3, expected 0, 1 or 2"),
        (_line([50, 50, 2] * 17), r"labels/a.txt:2: coordinates are not normalised"),
        ("1 " + _line([0.5, 0.5, 2] * 17)[2:], r"labels/a.txt:2: class 1, only class 0"),
    ],
)
def test_bad_label_line_names_file_and_line(tmp_path: Path, text: str, match: str) -> None:
    good = _line([0.5, 0.5, 2] * 17)
    root = _yolo_dataset(tmp_path / "y", {"a": good + "\n" + text + "\n"})
    with pytest.raises(DataError, match=match):
        read_yolo(root)


def test_label_without_image_and_image_that_is_not_one(tmp_path: Path) -> None:
    root = _yolo_dataset(tmp_path / "y", {"a": ""})
    (root / "labels" / "orphan.txt").write_text("")
    with pytest.raises(DataError, match=r"labels/orphan.txt: no image orphan\.\* in .*images"):
        read_yolo(root)
    (root / "labels" / "orphan.txt").unlink()
    (root / "images" / "b.jpg").write_text("not a jpeg")
    with pytest.raises(DataError, match=r"images/b.jpg: not an image OpenCV can decode"):
        read_yolo(root)


def test_write_yolo_is_atomic_and_refuses_existing_output(tmp_path: Path) -> None:
    root = _yolo_dataset(tmp_path / "y", {"1": _line([0.5, 0.5, 2] * 17)})
    ds = read_yolo(root)
    out = write_yolo(ds, tmp_path / "out")
    assert (out / "labels" / "1.txt").read_text().split()[5:8] == ["0.500000", "0.500000", "2"]
    ds.records[0].file_name = "missing.png"
    with pytest.raises(DataError, match=r"missing\.png: image file not found"):
        write_yolo(ds, tmp_path / "out2")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "y"]  # no partial out2, no temp folder


def test_limb_colours_by_side() -> None:
    assert limb_colour("left_knee", "left_ankle") == LEFT
    assert limb_colour("right_hip", "right_knee") == RIGHT
    assert limb_colour("left_hip", "right_hip") == CENTRE
    assert limb_colour("nose", "left_eye") == CENTRE


def test_preview_draws_limbs_and_visibility(tmp_path: Path) -> None:
    (tmp_path / "img").mkdir()
    cv2.imwrite(str(tmp_path / "img" / "p.png"), np.full((128, 128, 3), 100, np.uint8))
    kpts = np.zeros((1, 17, 3), np.float32)
    kpts[0, 7] = (30, 30, 2)  # left elbow, visible
    kpts[0, 9] = (30, 90, 2)  # left wrist, visible: a left limb between the two
    kpts[0, 8] = (90, 40, 1)  # right elbow, occluded: hollow
    kpts[0, 10] = (90, 100, 0)  # right wrist, unlabelled: not drawn (and no limb 8-10)
    rec = ImageRecord(5, "p.png", 128, 128, np.array([[20, 20, 110, 115]], np.float32), kpts)
    ds = PoseDataset(tmp_path / "img", [rec], skeleton=((7, 9), (8, 10)))
    out = preview_grid(ds, tmp_path / "grid.png", tile=128)
    grid = cv2.imread(str(out)).astype(int)
    assert grid.shape == (128, 128, 3)
    assert np.abs(grid[60, 30] - LEFT).max() < 30  # middle of the left limb
    assert np.abs(grid[30, 30] - (255, 255, 255)).max() < 30  # filled visible keypoint
    assert np.abs(grid[40, 90] - 100).max() < 5  # hollow: centre keeps the image
    ring = grid[36:45, 86:95]
    assert (np.abs(ring - (0, 255, 255)).max(axis=-1) < 60).any()  # ... inside a yellow ring
    assert np.abs(grid[70, 90] - 100).max() < 5  # no limb to the unlabelled wrist
    assert np.abs(grid[100, 90] - 100).max() < 5  # unlabelled keypoint not drawn
    assert np.abs(grid[60, 20] - (255, 0, 255)).max() < 40  # box edge
