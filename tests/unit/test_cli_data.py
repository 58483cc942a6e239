"""`edgepose --help/--version` and `edgepose data synth | preview | convert`, bad inputs included."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from pycocotools.coco import COCO
from typer.testing import CliRunner

from edgepose import __version__
from edgepose.cli import app
from edgepose.data.coco import read_coco
from edgepose.data.yolo import read_yolo
from tests.helpers.errors import assert_one_line_error

runner = CliRunner()


def invoke(*args: str | Path):
    return runner.invoke(app, [str(a) for a in args])


def test_help_and_version() -> None:
    result = invoke("--help")
    assert result.exit_code == 0
    assert "data" in result.output and "val" in result.output
    result = invoke("data", "--help")
    assert result.exit_code == 0
    for command in ("synth", "preview", "convert"):
        assert command in result.output
    result = invoke("--version")
    assert result.exit_code == 0
    assert result.output.strip() == f"edgepose {__version__}"


def test_synth_writes_a_dataset_pycocotools_loads(tmp_path: Path) -> None:
    out = tmp_path / "s"
    result = invoke("data", "synth", "--out", out, "--num-images", "3", "--size", "64", "--seed", "100")
    assert result.exit_code == 0, result.output
    coco = COCO(str(out / "annotations.json"))
    assert len(coco.getImgIds()) == 3
    people = len(coco.getAnnIds())
    assert f"3 images, {people} people" in result.stdout
    assert "images/s" in result.stdout
    for img in coco.loadImgs(coco.getImgIds()):
        assert cv2.imread(str(out / "images" / img["file_name"])).shape == (64, 64, 3)
    # The same command again refuses to overwrite; --force replaces with identical bytes.
    assert_one_line_error(
        invoke("data", "synth", "--out", out, "--num-images", "3"),
        f"{out} already exists and is not empty; pass --force to replace it, or choose another --out",
    )
    before = (out / "annotations.json").read_bytes()
    result = invoke(
        "data", "synth", "--out", out, "--num-images", "3", "--size", "64", "--seed", "100", "--force"
    )
    assert result.exit_code == 0, result.output
    assert (out / "annotations.json").read_bytes() == before


def test_synth_makes_missing_parent_folders(tmp_path: Path) -> None:
    out = tmp_path / "data" / "train"  # the README's `--out data/train` on a fresh clone: no data/ yet
    result = invoke("data", "synth", "--out", out, "--num-images", "2", "--size", "64", "--seed", "100")
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == ["annotations.json", "images"]


def test_preview_writes_grid_of_expected_size(synth_dataset: Path, tmp_path: Path) -> None:
    n = len(read_coco(synth_dataset / "annotations.json"))
    assert n >= 3
    out = tmp_path / "grid.jpg"
    result = invoke(
        "data", "preview", synth_dataset, "--out", out, "--num", "3", "--cols", "2", "--tile", "64"
    )
    assert result.exit_code == 0, result.output
    assert cv2.imread(str(out)).shape == (2 * 64, 2 * 64, 3)  # 3 images, 2 per row -> 2 rows
    assert out.read_bytes()[:2] == b"\xff\xd8"  # JPEG
    # The grid exists now: replacing it takes --force.
    assert_one_line_error(
        invoke("data", "preview", synth_dataset, "--out", out, "--num", "999"),
        f"{out} already exists; pass --force to replace it, or choose another --out",
    )
    # Asking for more images than exist shows them all.
    result = invoke(
        "data",
        "preview",
        synth_dataset,
        "--out",
        out,
        "--num",
        "999",
        "--cols",
        "4",
        "--tile",
        "32",
        "--force",
    )
    assert result.exit_code == 0, result.output
    rows, cols = -(-n // min(4, n)), min(4, n)
    assert cv2.imread(str(out)).shape == (rows * 32, cols * 32, 3)


def test_convert_both_ways(synth_dataset: Path, tmp_path: Path) -> None:
    original = read_coco(synth_dataset / "annotations.json")
    result = invoke("data", "convert", synth_dataset, tmp_path / "y", "--to", "yolo")
    assert result.exit_code == 0, result.output
    yolo = read_yolo(tmp_path / "y")
    assert len(list((tmp_path / "y" / "labels").glob("*.txt"))) == len(original)
    result = invoke("data", "convert", tmp_path / "y", tmp_path / "c", "--to", "coco")
    assert result.exit_code == 0, result.output
    back = COCO(str(tmp_path / "c" / "annotations.json"))
    assert len(back.getImgIds()) == len(original)
    assert len(back.getAnnIds()) == sum(r.num_people for r in original.records)
    got = {r.file_name: r for r in yolo.records}
    for rec in original.records:
        np.testing.assert_array_equal(got[rec.file_name].keypoints[..., 2], rec.keypoints[..., 2])
    assert_one_line_error(
        invoke("data", "convert", synth_dataset, tmp_path / "y", "--to", "yolo"), "already exists"
    )


# --- bad inputs: one line naming the file (and record/line), exit 1, nothing left behind ----------------


def _copy(synth_dataset: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(synth_dataset, tmp_path / "in"))


def _edit_annotations(root: Path, edit) -> Path:
    path = root / "annotations.json"
    data = json.loads(path.read_text())
    edit(data)
    path.write_text(json.dumps(data))
    return path


def _assert_nothing_left(tmp_path: Path, *inputs: str) -> None:
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(inputs)


@pytest.mark.parametrize("to", ["yolo", "coco"])
def test_missing_json(tmp_path: Path, to: str) -> None:
    result = invoke("data", "convert", tmp_path / "nope.json", tmp_path / "out", "--to", to)
    assert_one_line_error(result, "nope.json", "no such file")
    _assert_nothing_left(tmp_path)


def test_invalid_json(tmp_path: Path) -> None:
    (tmp_path / "bad.json").write_text('{"images": [')
    result = invoke("data", "convert", tmp_path / "bad.json", tmp_path / "out", "--to", "yolo")
    assert_one_line_error(result, "bad.json", "invalid JSON at line 1")
    _assert_nothing_left(tmp_path, "bad.json")


def test_annotation_missing_keypoints(synth_dataset: Path, tmp_path: Path) -> None:
    root = _copy(synth_dataset, tmp_path)

    def drop(data: dict) -> None:
        del data["annotations"][1]["keypoints"]

    _edit_annotations(root, drop)
    ann_id = json.loads((root / "annotations.json").read_text())["annotations"][1]["id"]
    result = invoke("data", "convert", root, tmp_path / "out", "--to", "yolo")
    assert_one_line_error(result, "annotations.json", f"annotation {ann_id} has no 'keypoints'")
    _assert_nothing_left(tmp_path, "in")


def test_wrong_keypoint_length(synth_dataset: Path, tmp_path: Path) -> None:
    root = _copy(synth_dataset, tmp_path)

    def cut(data: dict) -> None:
        data["annotations"][0]["keypoints"] = data["annotations"][0]["keypoints"][:-3]

    _edit_annotations(root, cut)
    result = invoke("data", "preview", root, "--out", tmp_path / "grid.jpg")
    assert_one_line_error(result, "annotations.json", "has 48 keypoint values, expected 51")
    _assert_nothing_left(tmp_path, "in")


def test_yolo_line_with_wrong_column_count(synth_dataset: Path, tmp_path: Path) -> None:
    assert invoke("data", "convert", synth_dataset, tmp_path / "y", "--to", "yolo").exit_code == 0
    label = sorted((tmp_path / "y" / "labels").glob("*.txt"))[0]
    lines = label.read_text().splitlines()
    label.write_text("\n".join([*lines, " ".join(lines[0].split()[:-4])]) + "\n")
    result = invoke("data", "convert", tmp_path / "y", tmp_path / "c", "--to", "coco")
    assert_one_line_error(result, f"{label.name}:{len(lines) + 1}: 52 values, expected 56")
    _assert_nothing_left(tmp_path, "y")


def test_image_that_is_not_an_image(synth_dataset: Path, tmp_path: Path) -> None:
    # COCO input: found when the pixels are needed (preview).
    root = _copy(synth_dataset, tmp_path)
    first = read_coco(root / "annotations.json").records[0]
    (root / "images" / first.file_name).write_bytes(b"\x00not a jpeg")
    result = invoke("data", "preview", root, "--out", tmp_path / "grid.jpg", "--num", "100")
    assert_one_line_error(result, first.file_name, "not an image")
    _assert_nothing_left(tmp_path, "in")
    # YOLO input: found when the image size is read.
    assert invoke("data", "convert", root, tmp_path / "y", "--to", "yolo").exit_code == 0
    result = invoke("data", "convert", tmp_path / "y", tmp_path / "c", "--to", "coco")
    assert_one_line_error(result, first.file_name, "not an image")
    _assert_nothing_left(tmp_path, "in", "y")


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (("--num-images", "0"), "--num-images must be >= 1, got 0"),
        (("--num-images", "2", "--size", "8"), "--size must be >= 32 pixels, got 8"),
    ],
)
def test_synth_bad_options(tmp_path: Path, args: tuple[str, ...], fragment: str) -> None:
    result = invoke("data", "synth", "--out", tmp_path / "s", *args)
    assert_one_line_error(result, fragment)
    _assert_nothing_left(tmp_path)


def test_dataset_folder_of_unknown_format(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    result = invoke("data", "preview", tmp_path / "d", "--out", tmp_path / "g.jpg")
    assert_one_line_error(result, "neither annotations.json (COCO) nor labels/ (YOLO-pose)")
    _assert_nothing_left(tmp_path, "d")
