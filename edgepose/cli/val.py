"""`edgepose val`: COCO OKS keypoint AP of predictions against a ground-truth JSON."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from edgepose.cli._app import app
from edgepose.cli._common import ForceOpt, console, handle_errors, stage_bars, warn
from edgepose.errors import ConfigError

_METRIC_ROWS = (
    ("AP", "ap"),
    ("AP50", "ap50"),
    ("AP75", "ap75"),
    ("APM", "apm"),
    ("APL", "apl"),
    ("AR", "ar"),
)
_MISSING_SHOWN = 10  # ground-truth image ids listed when some have no prediction


def _print_metrics(metrics: dict[str, float], title: str) -> None:
    from rich.table import Table

    from edgepose.data.coco_eval import points

    console.print(title, highlight=False, soft_wrap=True)  # above: a title inside wraps to the table width
    table = Table()
    for label, _ in _METRIC_ROWS:
        table.add_column(label, justify="right")
    table.add_row(*(points(metrics[key]) for _, key in _METRIC_ROWS))
    console.print(table)
    console.print(
        "COCO points (x100), as bench prints them; n/a: no people of that size in the ground truth",
        highlight=False, soft_wrap=True,
    )  # fmt: skip


def _warn_missing(missing: list[int], certain: bool, total: int) -> None:
    """Say which ground-truth images the results have nothing for (a results file made for other images
    would otherwise just score low)."""
    if not missing:
        return
    shown = ", ".join(map(str, missing[:_MISSING_SHOWN])) + (", ..." if len(missing) > _MISSING_SHOWN else "")
    what = "were not predicted" if certain else "have labelled people in them and no prediction"
    warn(f"{len(missing)} of {total} ground-truth images {what} (image_id {shown}): every person in them "
         "counts as missed")  # fmt: skip


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
        Path | None,
        typer.Option("--json", help="Also save the metrics as JSON here (fractions in [0, 1])."),
    ] = None,
    weights: Annotated[
        Path | None,
        typer.Option("--weights", help="Or predict with this PyTorch checkpoint (.pt) on --data."),
    ] = None,
    force: ForceOpt = False,
) -> None:
    """COCO OKS keypoint AP, AP50, AP75, APM, APL and AR of predictions against ground truth."""
    from edgepose.data.coco import read_coco
    from edgepose.data.coco_eval import (
        AP_SCALE,
        AP_SCALE_KEY,
        evaluate_keypoints,
        load_predictions,
        unpredicted_images,
    )
    from edgepose.data.convert import coco_json
    from edgepose.fsio import check_new, write_text

    # Exactly one source of predictions: a results file, or a checkpoint run on the ground-truth images.
    sources = {"--pred": pred, "--weights": weights}
    given = [name for name, value in sources.items() if value is not None]
    if len(given) != 1:
        raise ConfigError(f"give exactly one of {', '.join(sources)} (got {', '.join(given) or 'none'})")
    if json_out is not None:
        check_new(json_out, force=force, option="--json")  # fail before the evaluation, not after
    if weights is not None:
        from edgepose.train.evaluate import predict_checkpoint  # torch: a base install stops here

    gt = coco_json(gt)  # a dataset folder, as `data synth` writes it, names its JSON
    gt_data = read_coco(gt)
    if pred is not None:
        predictions = load_predictions(pred, gt_data)
        source = pred.name
        _warn_missing(*unpredicted_images(pred, predictions, gt_data), len(gt_data))
    if weights is not None:
        with stage_bars(24, transient=True) as (_, progress):
            stage, total = f"predict {weights.name}", len(gt_data)
            predictions = predict_checkpoint(weights, gt_data, progress=lambda n: progress(stage, n, total))
        source = weights.name
    metrics = evaluate_keypoints(gt, predictions).as_dict()
    _print_metrics(metrics, f"{source} vs {gt.name}: {len(predictions)} predictions")
    if json_out is not None:
        write_text(json_out, json.dumps({**metrics, AP_SCALE_KEY: AP_SCALE}, indent=2) + "\n")
        console.print(f"wrote {json_out}", highlight=False, soft_wrap=True)
