"""scripts/bench_real.py without the real model: the split, the split folders and the one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.helpers.scripts import load_script

bench_real = load_script("bench_real")


def _dataset(root: Path, n: int, people_in: set[int]) -> Path:
    (root / "images").mkdir(parents=True)
    images = [{"id": i + 1, "file_name": f"{i:04d}.jpg", "width": 64, "height": 48} for i in range(n)]
    for img in images:
        (root / "images" / img["file_name"]).write_bytes(b"jpeg")
    person = {"iscrowd": 0, "num_keypoints": 3, "bbox": [0, 0, 9, 9], "area": 81, "category_id": 1}
    anns = [
        {"id": 100 + i, "image_id": i + 1, "keypoints": [1, 1, 2] * 17, **person} for i in sorted(people_in)
    ]
    (root / "annotations.json").write_text(
        json.dumps({"images": images[::-1], "annotations": anns, "categories": []}), encoding="utf-8"
    )
    return root


def test_split_by_file_name_is_disjoint_and_counts_people(tmp_path: Path) -> None:
    data = _dataset(tmp_path / "d", 40, people_in={1, 30, 35})
    coco, split = bench_real.read_split(data, 20)
    assert split.calib == [f"{i:04d}.jpg" for i in range(20)]  # the first 20 by name, whatever the JSON order
    assert split.evaluate == [f"{i:04d}.jpg" for i in range(20, 40)]
    assert split.people == 2  # images 30 and 35 hold a labelled person; image 1 calibrates
    _, rev = bench_real.read_split(data, 20, reverse=True)
    assert rev.calib == split.evaluate and rev.evaluate == split.calib and rev.people == 1
    calib, ev = bench_real.write_split(data, coco, split, tmp_path / "work")
    assert sorted(p.name for p in (calib / "images").iterdir()) == split.calib
    sub = json.loads((ev / "annotations.json").read_text())
    assert sorted(i["file_name"] for i in sub["images"]) == split.evaluate
    assert {a["image_id"] for a in sub["annotations"]} == {31, 36}


@pytest.mark.parametrize(
    ("num_calib", "match"),
    [
        (4, "--num-calib 4 is too few; use at least 16"),
        (36, "--num-calib 36 leaves 4 of 40 photos to evaluate; lower --num-calib to <= 32"),
    ],
)
def test_bad_splits_are_one_line_errors(tmp_path: Path, num_calib: int, match: str) -> None:
    data = _dataset(tmp_path / "d", 40, people_in={39})
    with pytest.raises(bench_real.BenchRealError, match=match):
        bench_real.read_split(data, num_calib)


def test_unlabelled_folder_and_no_people_are_refused(tmp_path: Path) -> None:
    (tmp_path / "photos").mkdir()
    with pytest.raises(
        bench_real.BenchRealError, match=r"has no annotations\.json: this benchmark needs a labelled"
    ):
        bench_real.read_split(tmp_path / "photos", 16)
    data = _dataset(tmp_path / "d", 40, people_in={0})
    with pytest.raises(bench_real.BenchRealError, match=r"evaluation photos of .* have no labelled people"):
        bench_real.read_split(data, 16)


def test_main_without_model_names_the_fix(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc = bench_real.main(["--model", str(tmp_path / "none.onnx"), "--data", str(tmp_path)])
    assert rc == 1 and "error: --model" in capsys.readouterr().err
