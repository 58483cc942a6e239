"""`edgepose val`: COCO OKS keypoint AP of predictions against a ground-truth JSON."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Annotated, Any

import typer

from edgepose.cli._app import app
from edgepose.cli._common import console, handle_errors
from edgepose.errors import ConfigError, DataError

_METRIC_ROWS = (
    ("AP", "ap"),
    ("AP50", "ap50"),
    ("AP75", "ap75"),
    ("APM", "apm"),
    ("APL", "apl"),
    ("AR", "ar"),
)
_RESULT_KEYS = ("image_id", "keypoints", "score")  # category_id defaults to 1 (person)


def load_predictions(path: Path, gt_image_ids: set[int], num_keypoints: int) -> list[dict[str, Any]]:
    """Check a COCO keypoint results file (a JSON list of {image_id, keypoints, score})."""
    if not path.is_file():
        raise DataError(f"{path}: prediction file not found; pass --pred PRED.json (COCO results format)")
    try:
        preds = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: not valid JSON ({exc}); pass a COCO keypoint results file") from exc
    if not isinstance(preds, list):
        raise DataError(
            f"{path}: expected a JSON list of COCO results, got a {type(preds).__name__}; "
            "write [{image_id, category_id, keypoints, score}, ...]"
        )
    for i, p in enumerate(preds):
        missing = [k for k in _RESULT_KEYS if not isinstance(p, dict) or k not in p]
        if missing:
            raise DataError(
                f"{path}: result {i} lacks {', '.join(missing)}; each result needs {', '.join(_RESULT_KEYS)}"
            )
        kpts = p["keypoints"]
        if not isinstance(kpts, list) or len(kpts) != 3 * num_keypoints:
            n = len(kpts) if isinstance(kpts, list) else type(kpts).__name__
            raise DataError(
                f"{path}: result {i} has {n} keypoint values, expected {3 * num_keypoints} "
                f"({num_keypoints} x 3: x, y, score)"
            )
        finite = (
            isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
            for v in [*kpts, p["score"]]
        )
        if not all(finite):
            raise DataError(
                f"{path}: result {i} has a keypoint or score that is not a finite number; "
                "write numbers only (no strings, NaN or Infinity)"
            )
        if p["image_id"] not in gt_image_ids:
            raise DataError(
                f"{path}: result {i} has image_id {p['image_id']!r}, which is not in the ground truth; "
                "predict on the ground-truth images (or pass the matching --gt)"
            )
    return preds


def _print_metrics(metrics: dict[str, float], title: str) -> None:
    from rich.table import Table

    table = Table(title=title, title_justify="left")
    for label, _ in _METRIC_ROWS:
        table.add_column(label, justify="right")
    # pycocotools reports -1 where the ground truth has no people of that size
    table.add_row(*(f"{metrics[key]:.4f}" if metrics[key] >= 0 else "n/a" for _, key in _METRIC_ROWS))
    console.print(table)


@app.command()
@handle_errors
def val(
    gt: Annotated[
        Path,
        typer.Option("--gt", "--data", help="Ground truth: COCO keypoints JSON (or its dataset folder)."),
    ],
    pred: Annotated[
        Path | None, typer.Option("--pred", help="Predictions: COCO keypoint results JSON (a list).")
    ] = None,
    json_out: Annotated[
        Path | None, typer.Option("--json", help="Also save the metrics as JSON here.")
    ] = None,
    weights: Annotated[
        Path | None,
        typer.Option("--weights", help="Or predict with this PyTorch checkpoint (.pt) on --data."),
    ] = None,
) -> None:
    """COCO OKS keypoint AP, AP50, AP75, APM, APL and AR of predictions against ground truth."""
    from edgepose.data.coco import read_coco
    from edgepose.data.coco_eval import evaluate_keypoints
    from edgepose.data.convert import COCO_JSON_NAME
    from edgepose.fsio import check_parent, write_text

    # Exactly one source of predictions; a model source (--weights/--data) joins this list later.
    sources = {"--pred": pred, "--weights": weights}
    given = [name for name, value in sources.items() if value is not None]
    if len(given) != 1:
        raise ConfigError(f"give exactly one of {', '.join(sources)} (got {', '.join(given) or 'none'})")
    if json_out is not None:
        check_parent(json_out)  # fail before the evaluation, not after

    if gt.is_dir() and (gt / COCO_JSON_NAME).is_file():  # a dataset folder, as `data synth` writes it
        gt = gt / COCO_JSON_NAME
    gt_data = read_coco(gt)
    gt_ids = {r.image_id for r in gt_data.records}
    if pred is not None:
        predictions = load_predictions(pred, gt_ids, len(gt_data.keypoint_names))
        source = pred.name
    if weights is not None:
        from edgepose.train.evaluate import predict_checkpoint

        predictions = predict_checkpoint(weights, gt_data)
        source = weights.name
    metrics = evaluate_keypoints(gt, predictions).as_dict()
    _print_metrics(metrics, f"{source} vs {gt.name}: {len(predictions)} predictions")
    if json_out is not None:
        write_text(json_out, json.dumps(metrics, indent=2) + "\n")
        console.print(f"wrote {json_out}", highlight=False, soft_wrap=True)
