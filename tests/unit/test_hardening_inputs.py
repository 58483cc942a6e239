# ruff: noqa: E501  -- CASES is a table, one row per line like docs/errors.md
"""Bad inputs to every command through CliRunner: one `error:` line naming the value and the fix, exit 1,
no traceback, nothing written, inputs unchanged (hashed before and after). docs/errors.md is the table.

Rows already covered by the command owners' tests (tests/unit/test_cli_*.py, test_train_cli.py,
test_checkpoint.py, test_runtime_session.py, tests/e2e/test_quantize.py) are not repeated here; the
table cites them.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import onnx
import pytest
from typer.testing import CliRunner

from edgepose.cli import app
from tests.helpers.errors import assert_clean_failure, tree_hashes
from tests.helpers.foreign_onnx import detection_onnx
from tests.helpers.quant_models import build_e2e_model, make_calib_dir
from tests.helpers.runtime_onnx import build_model

runner = CliRunner()


@pytest.fixture(scope="module")
def inp(
    tmp_path_factory: pytest.TempPathFactory, lively_checkpoint: Path, synth_dataset: Path
) -> dict[str, Path]:
    """Every input file the rows read, good and bad, in one folder hashed around each row."""
    d = tmp_path_factory.mktemp("hardening_in")
    p: dict[str, Path] = {"dir": d}
    p["ckpt"] = Path(shutil.copy(lively_checkpoint, d / "w.pt"))
    p["e2e"] = build_e2e_model(d / "e2e.onnx", seed=120, size=64)
    p["rt"] = build_model(d / "rt.onnx")  # runtime-contract graph with edgepose metadata
    p["calib"] = make_calib_dir(d / "calib", n=4, seed=121, size=64)
    p["ds"] = Path(shutil.copytree(synth_dataset, d / "ds"))
    p["img"] = sorted((p["ds"] / "images").iterdir())[0]
    p["det"] = detection_onnx(d / "yolov8n.onnx")
    meta = {m.key: m.value for m in onnx.load(str(p["rt"])).metadata_props}
    p["det_meta"] = detection_onnx(d / "det_meta.onnx", meta)  # edgepose metadata, foreign outputs
    for name in ("empty.pt", "empty.onnx", "empty.json", "empty.yaml", "empty.png", "empty.mp4"):
        p[name] = d / name
        p[name].write_bytes(b"")
    p["trunc.pt"] = d / "trunc.pt"
    p["trunc.pt"].write_bytes(p["ckpt"].read_bytes()[:3000])
    p["trunc.onnx"] = d / "trunc.onnx"
    p["trunc.onnx"].write_bytes(p["e2e"].read_bytes()[:3000])
    p["trunc.json"] = d / "trunc.json"
    p["trunc.json"].write_text('{"images": [')
    p["bad.yaml"] = d / "bad.yaml"
    p["bad.yaml"].write_text("depth_multiple: [0.33\n")
    p["typo.yaml"] = d / "typo.yaml"
    p["typo.yaml"].write_text("depth_multiple: 0.33\nwidht_multiple: 0.25\n")
    gt = json.loads((p["ds"] / "annotations.json").read_text())
    gt["annotations"][0]["keypoints"][3] = float("nan")
    p["nan.json"] = d / "nan.json"
    p["nan.json"].write_text(json.dumps(gt))  # json writes NaN, Python's reader accepts it
    p["badcalib"] = Path(shutil.copytree(p["calib"], d / "badcalib"))
    (p["badcalib"] / "img_001.png").write_bytes(b"")  # a 0-byte image among good ones
    p["dsbad"] = Path(shutil.copytree(p["ds"], d / "dsbad"))
    (p["dsbad"] / "images" / "000002.jpg").write_bytes(b"garbage")  # the third image of the set
    from edgepose.quant.quantize import quantize_model
    from edgepose.spec import Precision

    q8 = onnx.load(str(quantize_model(p["e2e"], p["calib"], d / "q8.onnx", precision=Precision.INT8).output))
    for prop in q8.metadata_props:  # quantized by "another tool": QDQ nodes, metadata still says float
        if prop.key.endswith("precision"):
            prop.value = json.dumps("float")
    onnx.save(q8, str(d / "q8float.onnx"))
    p["q8float"] = d / "q8float.onnx"
    yolo = d / "yolo"
    assert runner.invoke(app, ["data", "convert", str(p["ds"]), str(yolo), "--to", "yolo"]).exit_code == 0
    label = sorted((yolo / "labels").glob("*.txt"))[0]
    label.write_bytes(label.read_bytes()[:10] + b"\xd0\x04" + label.read_bytes()[10:])  # not UTF-8
    p["yolo"], p["label"] = yolo, label
    (d / "old.quant.json").write_text("{}")  # a quantization report whose model is gone
    p["benchdir"] = d / "benchdir"  # a folder holding an earlier bench report
    p["benchdir"].mkdir()
    (p["benchdir"] / "bench.json").write_text("{}")
    return p


# (row id, argv with {input} / {out} placeholders, fragments of the one error line)
CASES: list[tuple[str, str, tuple[str, ...]]] = [
    # export ------------------------------------------------------------------------------------------
    ("export-empty-ckpt", "export --weights {empty.pt} --out {out}/m.onnx", ("empty.pt is empty (0 bytes)", "pass a checkpoint (.pt) from `edgepose train`")),
    ("export-truncated-ckpt", "export --weights {trunc.pt} --out {out}/m.onnx", ("trunc.pt could not be read as a PyTorch checkpoint (truncated or corrupt?)",)),
    ("export-onnx-as-ckpt", "export --weights {e2e} --out {out}/m.onnx", ("e2e.onnx is an ONNX model; pass a checkpoint (.pt)",)),
    ("export-conf-nan", "export --weights {ckpt} --out {out}/m.onnx --conf nan", ("--conf nan is out of range; use a value in [0, 1] (e.g. --conf 0.25)",)),
    ("export-conf-negative", "export --weights {ckpt} --out {out}/m.onnx --conf -1", ("--conf -1.0 is out of range",)),
    ("export-iou-1.5", "export --weights {ckpt} --out {out}/m.onnx --iou 1.5", ("--iou 1.5 is out of range; use a value in [0, 1] (e.g. --iou 0.45)",)),
    ("export-iou-nan", "export --weights {ckpt} --out {out}/m.onnx --iou nan", ("--iou nan is out of range",)),
    ("export-batch-negative", "export --weights {ckpt} --out {out}/m.onnx --batch -1", ("--batch -1 must be >= 1",)),
    ("export-max-det-negative", "export --weights {ckpt} --out {out}/m.onnx --max-det -3", ("--max-det -3 must be >= 1",)),
    ("export-img-0", "export --weights {ckpt} --out {out}/m.onnx --img 0", ("--img 0 is not divisible by the largest stride 32", "e.g. 32")),
    ("export-from-onnx-detection-layout", "export --from-onnx {det} --out {out}/m.onnx", ("yolov8n.onnx: output (1, 84, 8400) does not fit (B, 4 + 1 + 3K, N)", "79 keypoint channels is not a positive multiple of 3", "export the raw pose model")),
    ("export-from-onnx-missing", "export --from-onnx {dir}/nope.onnx --out {out}/m.onnx", ("nope.onnx: no such file; pass the raw pose .onnx to import",)),
    ("export-from-onnx-empty", "export --from-onnx {empty.onnx} --out {out}/m.onnx", ("empty.onnx is empty (0 bytes); pass the raw pose .onnx to import",)),
    ("export-out-exists", "export --weights {ckpt} --out {e2e}", ("e2e.onnx already exists; pass --force to replace it, or choose another --out",)),
    ("export-out-under-a-file", "export --weights {ckpt} --out {img}/m.onnx", ("000000.jpg is a file, not a folder; choose another --out",)),
    ("export-from-onnx-ckpt", "export --from-onnx {ckpt} --out {out}/m.onnx", ("w.pt is not a readable ONNX file (DecodeError); pass a .onnx model",)),
    ("export-from-onnx-conf-nan", "export --from-onnx {det} --out {out}/m.onnx --conf nan", ("--conf nan is out of range; use a value in [0, 1]",)),
    # quantize ----------------------------------------------------------------------------------------
    ("quantize-missing-model", "quantize {dir}/nope.onnx --calib {calib} --bits 8 --out {out}/q.onnx", ("nope.onnx does not exist; pass the .onnx file written by `edgepose export`",)),
    ("quantize-empty-onnx", "quantize {empty.onnx} --calib {calib} --bits 8 --out {out}/q.onnx", ("empty.onnx is empty (0 bytes)", "edgepose export")),
    ("quantize-truncated-onnx", "quantize {trunc.onnx} --calib {calib} --bits 8 --out {out}/q.onnx", ("trunc.onnx is not a readable ONNX file (DecodeError)",)),
    ("quantize-ckpt-as-onnx", "quantize {ckpt} --calib {calib} --bits 8 --out {out}/q.onnx", ("w.pt is not a readable ONNX file",)),
    ("quantize-detection-layout", "quantize {det} --calib {calib} --bits 8 --out {out}/q.onnx", ("yolov8n.onnx has no edgepose metadata", "edgepose export --from-onnx")),
    ("quantize-qdq-model", "quantize {q8float} --calib {calib} --bits 8 --out {out}/q.onnx", ("q8float.onnx is already quantized (has DequantizeLinear)", "quantize the float export instead")),
    ("quantize-budget-nan", "quantize {e2e} --calib {calib} --mixed --budget nan --out {out}/q.onnx", ("--budget nan is outside (0, 1)", "e.g. 0.3")),
    ("quantize-budget-negative", "quantize {e2e} --calib {calib} --mixed --budget -0.5 --out {out}/q.onnx", ("--budget -0.5 is outside (0, 1)",)),
    ("quantize-max-drop-nan", "quantize {e2e} --calib {calib} --mixed --max-drop nan --out {out}/q.onnx", ("--max-drop nan is outside (0, 1)", "e.g. 0.01")),
    ("quantize-max-drop-0", "quantize {e2e} --calib {calib} --mixed --max-drop 0 --out {out}/q.onnx", ("--max-drop 0.0 is outside (0, 1)",)),
    ("quantize-num-calib-0", "quantize {e2e} --calib {calib} --bits 8 --num-calib 0 --out {out}/q.onnx", ("--num-calib must be >= 1, got 0",)),
    ("quantize-calib-is-a-file", "quantize {e2e} --calib {img} --bits 8 --out {out}/q.onnx", ("is a file, expected a folder of images", "pass --calib DIR")),
    ("quantize-corrupt-calib-image", "quantize {e2e} --calib {badcalib} --bits 8 --out {out}/q.onnx", ("cannot decode calibration image", "img_001.png", "re-save it as JPEG/PNG")),
    ("quantize-out-under-a-file", "quantize {e2e} --calib {calib} --bits 8 --out {img}/q.onnx", ("000000.jpg is a file, not a folder; choose another --out",)),
    ("quantize-out-exists", "quantize {e2e} --calib {calib} --bits 8 --out {rt}", ("rt.onnx already exists; pass --force to replace it, or choose another --out",)),
    ("quantize-report-exists", "quantize {e2e} --calib {calib} --bits 8 --out {dir}/old.onnx", ("old.quant.json already exists; pass --force to replace it",)),
    # predict -----------------------------------------------------------------------------------------
    ("predict-out-exists", "predict {rt} {img} --out {ds}", ("ds already exists and is not empty; pass --force to replace it, or choose another --out",)),
    ("predict-empty-onnx", "predict {empty.onnx} {img} --out {out}/p", ("empty.onnx is empty (0 bytes)",)),
    ("predict-ckpt-as-onnx", "predict {ckpt} {img} --out {out}/p", ("w.pt is not an ONNX model (protobuf parsing failed)",)),
    ("predict-detection-layout", "predict {det} {img} --out {out}/p", ("yolov8n.onnx has no edgepose metadata", "edgepose export --from-onnx")),
    ("predict-detection-outputs", "predict {det_meta} {img} --out {out}/p", ("det_meta.onnx lacks output(s) detections, num_detections (outputs: output0)",)),
    ("predict-conf-nan", "predict {rt} {img} --out {out}/p --conf nan", ("score threshold nan is outside [0, 1]", "e.g. 0.25")),
    ("predict-conf-negative", "predict {rt} {img} --out {out}/p --conf -1", ("score threshold -1.0 is outside [0, 1]",)),
    ("predict-iou-1.5", "predict {rt} {img} --out {out}/p --iou 1.5", ("IoU threshold 1.5 is outside (0, 1]", "e.g. 0.45")),
    ("predict-iou-0", "predict {rt} {img} --out {out}/p --iou 0", ("IoU threshold 0.0 is outside (0, 1]",)),
    ("predict-threads-0", "predict {rt} {img} --out {out}/p --threads 0", ("threads must be >= 1, got 0",)),
    ("predict-empty-image", "predict {rt} {empty.png} --out {out}/p", ("empty.png: not a readable image (corrupt, empty or an unsupported format)",)),
    ("predict-empty-video", "predict {rt} {empty.mp4} --out {out}/p", ("empty.mp4: not a readable video",)),
    # val ---------------------------------------------------------------------------------------------
    ("val-empty-pred", "val --pred {empty.json} --gt {ds}", ("empty.json: not valid JSON",)),
    ("val-empty-gt", "val --pred {trunc.json} --gt {empty.json}", ("empty.json: invalid JSON at line 1 column 1", "fix or re-export the file")),
    ("val-nan-keypoint-gt", "val --pred {trunc.json} --gt {nan.json}", ("nan.json: annotation 1 has non-finite keypoint values (NaN or inf)",)),
    ("val-json-under-a-file", "val --pred {trunc.json} --gt {ds} --json {img}/m.json", ("000000.jpg is a file, not a folder; choose another --json",)),
    ("val-json-exists", "val --pred {trunc.json} --gt {ds} --json {empty.json}", ("empty.json already exists; pass --force to replace it, or choose another --json",)),
    # data --------------------------------------------------------------------------------------------
    ("synth-out-exists", "data synth --out {ds} --num-images 1", ("ds already exists and is not empty; pass --force to replace it",)),
    ("preview-out-exists", "data preview {ds} --out {img}", ("000000.jpg already exists; pass --force to replace it",)),
    ("convert-out-exists", "data convert {ds} {yolo} --to yolo", ("yolo already exists and is not empty; pass --force to replace it",)),
    ("synth-num-images-negative", "data synth --out {out}/s --num-images -1", ("--num-images must be >= 1, got -1",)),
    ("synth-size-0", "data synth --out {out}/s --size 0", ("--size must be >= 32 pixels, got 0", "e.g. --size 256")),
    ("preview-num-0", "data preview {ds} --out {out}/g.jpg --num 0", ("--num 0 is too small; it must be at least 1",)),
    ("preview-cols-negative", "data preview {ds} --out {out}/g.jpg --cols -1", ("--cols -1 is too small",)),
    ("preview-tile-0", "data preview {ds} --out {out}/g.jpg --tile 0", ("--tile 0 is too small; it must be at least 32",)),
    ("preview-bad-suffix", "data preview {ds} --out {out}/g.txt", ("g.txt: unsupported image suffix '.txt'", ".jpg")),
    ("preview-empty-json", "data preview {empty.json} --out {out}/g.jpg", ("empty.json: invalid JSON at line 1 column 1",)),
    ("convert-nan-keypoint", "data convert {nan.json} {out}/c --to yolo", ("nan.json: annotation 1 has non-finite keypoint values",)),
    ("convert-label-not-utf8", "data convert {yolo} {out}/c --to coco", ("000000.txt: not UTF-8 text", "fix or re-write the file")),
    # train (every row fails before a step runs) ------------------------------------------------------
    ("train-config-missing", "train --data {ds} --out {out}/t --config {dir}/nope.yaml", ("nope.yaml: no such config file", "edgepose-n")),
    ("train-config-empty", "train --data {ds} --out {out}/t --config {empty.yaml}", ("empty.yaml: expected a mapping of config keys",)),
    ("train-config-corrupt", "train --data {ds} --out {out}/t --config {bad.yaml}", ("bad.yaml: not valid YAML", "fix the file")),
    ("train-batch-negative", "train --data {ds} --out {out}/t --config edgepose-tiny --batch -1", ("--batch -1 must be >= 1; use e.g. --batch 16",)),
    ("train-workers-negative", "train --data {ds} --out {out}/t --config edgepose-tiny --workers -1", ("--workers -1 must be >= 0",)),
    ("train-mosaic-2", "train --data {ds} --out {out}/t --config edgepose-tiny --mosaic 2", ("--mosaic 2.0 must be a probability in [0, 1]",)),
    ("train-val-images-0", "train --data {ds} --out {out}/t --config edgepose-tiny --val-images 0", ("--val-images 0 must be >= 1",)),
    ("train-device-cuda", "train --data {ds} --out {out}/t --config edgepose-tiny --device cuda", ("--device cuda: CUDA is not available", "--device cpu")),
    ("train-data-missing", "train --data {dir}/nope --out {out}/t --config edgepose-tiny", ("nope: no such file or folder",)),
    ("train-data-corrupt", "train --data {trunc.json} --out {out}/t --config edgepose-tiny", ("trunc.json: invalid JSON at line 1",)),
    ("train-val-empty", "train --data {ds} --val {empty.json} --out {out}/t --config edgepose-tiny", ("empty.json: invalid JSON",)),
    ("train-init-from-onnx", "train --data {ds} --out {out}/t --init-from {e2e}", ("e2e.onnx is an ONNX model; pass a checkpoint (.pt)",)),
    ("train-init-from-empty", "train --data {ds} --out {out}/t --init-from {empty.pt}", ("empty.pt is empty (0 bytes)",)),
    ("train-corrupt-image", "train --data {dsbad} --out {out}/t --config edgepose-tiny --img 64 --epochs 1 --max-steps 1 --batch 12 --workers 0", ("000002.jpg: missing or not an image OpenCV can decode; replace or delete it",)),
    # bench -------------------------------------------------------------------------------------------
    ("bench-threads-0", "bench {rt} --data {ds} --out {out}/b --threads 0", ("--threads must be >= 1, got 0; use e.g. --threads 2",)),
    ("bench-runs-0", "bench {rt} --data {ds} --out {out}/b --runs 0", ("--runs must be >= 1, got 0",)),
    ("bench-num-images-negative", "bench {rt} --data {ds} --out {out}/b --num-images -1", ("--num-images must be >= 1, got -1",)),
    ("bench-num-calib-0", "bench {rt} --data {ds} --out {out}/b --num-calib 0", ("--num-calib must be >= 1, got 0",)),
    ("bench-variant-unknown", "bench {rt} --data {ds} --out {out}/b --variants int4", ("unknown variant 'int4'", "did you mean 'int8'?")),
    ("bench-missing-model", "bench {dir}/nope.onnx --data {ds} --out {out}/b", ("nope.onnx: no such file",)),
    ("bench-empty-onnx", "bench {empty.onnx} --data {ds} --out {out}/b --runs 1", ("empty.onnx is empty (0 bytes)",)),
    ("bench-truncated-onnx", "bench {trunc.onnx} --data {ds} --out {out}/b --runs 1", ("trunc.onnx is not an ONNX model",)),
    ("bench-detection-layout", "bench {det} --data {ds} --out {out}/b --runs 1", ("yolov8n.onnx has no edgepose metadata",)),
    ("bench-data-missing", "bench {rt} --data {dir}/nope --out {out}/b --runs 1", ("--data", "nope: no such file or folder",)),
    ("bench-data-corrupt", "bench {rt} --data {trunc.json} --out {out}/b --runs 1", ("trunc.json: invalid JSON",)),
    ("bench-corrupt-val-image", "bench {rt} --data {dsbad} --out {out}/b --runs 1 --threads 1 --cache-dir {out}/c", ("000002.jpg: not a readable image (corrupt, empty or an unsupported format)",)),
    ("bench-out-exists", "bench {rt} --data {ds} --out {benchdir}", ("bench.json already exists; pass --force to replace it, or choose another --out",)),
    ("bench-out-is-a-file", "bench {rt} --data {ds} --out {img} --runs 1", ("is a file; pass a folder for bench.json",)),
]  # fmt: skip


@pytest.mark.parametrize(("row", "argv", "fragments"), CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_one_line_and_changes_nothing(
    inp: dict[str, Path], tmp_path: Path, row: str, argv: str, fragments: tuple[str, ...]
) -> None:
    names = {**{k: str(v) for k, v in inp.items()}, "out": str(tmp_path)}
    args = [re.sub(r"\{([^}]+)\}", lambda m: names[m.group(1)], a) for a in argv.split()]
    before = tree_hashes(inp["dir"])
    result = runner.invoke(app, args)
    assert_clean_failure(result, fragments)
    assert tree_hashes(inp["dir"]) == before  # no input changed, nothing written beside them
    assert list(tmp_path.iterdir()) == []  # no output, no temp file, no half-made run folder


def test_every_row_has_a_distinct_id() -> None:
    ids = [c[0] for c in CASES]
    assert len(ids) == len(set(ids)) and len(ids) >= 70
    assert all(c[2] for c in CASES)  # every row names at least one fragment of its message


# Values typer itself cannot parse (wrong type, unknown choice, unknown option, missing option) are
# click usage errors: exit 2 and ONE line naming the option, the value given and where the help is.
USAGE = [
    ("export --weights {ckpt} --out {out}/m.onnx --conf abc", ("Invalid value for '--conf'", "Input should be a valid number", "(got 'abc')", "see `edgepose export --help`")),
    ("export --weights {ckpt} --out {out}/m.onnx --opset=17.5", ("Invalid value for '--opset'", "Input should be a valid integer", "(got '17.5')")),
    ("quantize {e2e} --calib {calib} --bits 8 --method foo", ("Invalid value for '--method'", "'foo' is not one of 'minmax'", "see `edgepose quantize --help`")),
    ("train --data {ds} --out {out}/t --config edgepose-tiny --activation gelu", ("Invalid value for '--activation'", "'gelu' is not one of 'relu', 'relu6', 'silu'", "see `edgepose train --help`")),
    ("data convert {ds} {out}/c --to xml", ("Invalid value for '--to'", "'xml' is not one of 'coco', 'yolo'", "see `edgepose data convert --help`")),
    ("export --weights {ckpt} --out {out}/m.onnx --bogus", ("No such option: --bogus", "see `edgepose export --help`")),
    ("quantize {e2e} --bits 8", ("Missing option '--calib'", "see `edgepose quantize --help`")),
    ("exprot --weights {ckpt}", ("No such command 'exprot'", "Did you mean 'export'?", "see `edgepose --help`")),
]  # fmt: skip


@pytest.mark.parametrize(
    ("argv", "fragments"), USAGE, ids=[u[0].split()[0] + "-" + u[0].split()[-1] for u in USAGE]
)
def test_unparsable_values_are_usage_errors(
    inp: dict[str, Path], tmp_path: Path, argv: str, fragments: tuple[str, ...]
) -> None:
    names = {**{k: str(v) for k, v in inp.items()}, "out": str(tmp_path)}
    args = [re.sub(r"\{([^}]+)\}", lambda m: names[m.group(1)], a) for a in argv.split()]
    before = tree_hashes(inp["dir"])
    result = runner.invoke(app, args, env={"COLUMNS": "40"})
    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit) and "Traceback" not in result.output
    assert result.stdout == "" and result.stderr.startswith("error: ")
    assert result.stderr.count("\n") == 1, result.stderr  # one line, however narrow the terminal
    for frag in fragments:
        assert frag in result.stderr, (frag, result.stderr)
    assert tree_hashes(inp["dir"]) == before and list(tmp_path.iterdir()) == []


def test_errors_doc_has_a_row_per_case_and_cites_only_existing_tests() -> None:
    repo = Path(__file__).resolve().parents[2]
    doc = (repo / "docs" / "errors.md").read_text(encoding="utf-8")
    assert sorted(re.findall(r"H\[`([^`]+)`\]", doc)) == sorted(c[0] for c in CASES)
    cited = set(re.findall(r"(tests/[\w/]+\.py)::(test_\w+)", doc))
    assert len(cited) >= 45
    for path, name in cited:
        assert f"def {name}(" in (repo / path).read_text(encoding="utf-8"), (path, name)


def test_internal_errors_keep_their_traceback(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A bug is not a user error: handle_errors must not turn it into a tidy one-liner."""
    import edgepose.data.synth

    def bug(*args: object, **kwargs: object) -> None:
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(edgepose.data.synth, "synthesize", bug)
    result = runner.invoke(app, ["data", "synth", "--out", str(tmp_path / "s"), "--num-images", "1"])
    assert result.exit_code == 1 and isinstance(result.exception, ZeroDivisionError)
    assert "error:" not in result.stderr and list(tmp_path.iterdir()) == []
