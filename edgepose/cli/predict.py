"""`edgepose predict`: run an exported model on images, folders, videos or a camera."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from edgepose.cli._app import app
from edgepose.cli._common import ForceOpt, console, err_console, handle_errors, warn

if TYPE_CHECKING:
    from rich.progress import Progress

    from edgepose.runtime import PoseEstimator, Source, Timings
    from edgepose.runtime.pipeline import PredictOptions, SourceDone

DEFAULT_OUT = Path("runs/predict")


@contextlib.contextmanager
def _erased_on_error(progress: Progress) -> Iterator[Progress]:
    """On failure the bar is erased (terminal) or not printed (logs): the `error:` line stands alone."""
    try:
        yield progress
    except BaseException:
        progress.live.transient = True
        raise


def _next_free(base: Path) -> Path:
    """runs/predict, then runs/predict2, runs/predict3, ...: never overwrite an earlier run."""
    candidate, i = base, 1
    while candidate.exists() and (not candidate.is_dir() or any(candidate.iterdir())):
        i += 1
        candidate = base.with_name(f"{base.name}{i}")
    return candidate


@app.command()
@handle_errors
def predict(
    model: Annotated[
        Path, typer.Argument(help="End-to-end .onnx from `edgepose export` (float or quantized).")
    ],
    sources: Annotated[
        list[str], typer.Argument(help="Image files, folders of images, video files, or a camera index (0).")
    ],
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            help="Output folder, new or empty (default: runs/predict, runs/predict2, ...: the first free).",
        ),
    ] = None,
    conf: Annotated[
        float | None, typer.Option("--conf", help="Score threshold (default: the model's).")
    ] = None,
    iou: Annotated[
        float | None, typer.Option("--iou", help="NMS IoU threshold (default: the model's).")
    ] = None,
    save_json: Annotated[
        bool, typer.Option("--save-json", help="Also write predictions.json (COCO results) and files.json.")
    ] = False,
    threads: Annotated[int | None, typer.Option("--threads", help="onnxruntime intra-op threads.")] = None,
    show_fps: Annotated[
        bool, typer.Option("--show-fps", help="Draw the frame rate on outputs; print a timing breakdown.")
    ] = False,
    force: ForceOpt = False,
) -> None:
    """Predict poses; write annotated images/videos (and COCO JSON) into one output folder."""
    from edgepose.fsio import check_new
    from edgepose.runtime import PoseEstimator, resolve_sources
    from edgepose.runtime.pipeline import PredictOptions
    from edgepose.spec import IOU_THR_NAME, PREDICTIONS_FILE, SCORE_THR_NAME

    if out is not None:
        check_new(out, force=force)  # before the model is opened
    estimator = PoseEstimator(model, threads=threads)
    spec = estimator.spec
    if iou is not None and not estimator.supports_override(IOU_THR_NAME):
        # A score input without an IoU input is an NMS-free graph (ER-Pose, imported end-to-end models).
        nms_free = estimator.supports_override(SCORE_THR_NAME)
        why = "an NMS-free graph suppresses nothing" if nms_free else f"NMS uses {spec.iou_threshold}"
        warn(f"{model} has no {IOU_THR_NAME} input: --iou {iou} is ignored ({why})")
    if conf is not None and conf < spec.conf_threshold and not estimator.supports_override(SCORE_THR_NAME):
        warn(f"{model} bakes in score threshold {spec.conf_threshold}: --conf {conf} cannot lower it")
    estimator.override_feeds(conf, iou, None)  # range checks before any output exists
    args, image_ids, datasets = _coco_folders(sources)
    options = PredictOptions(conf=conf, iou=iou, save_json=save_json, show_fps=show_fps, image_ids=image_ids)
    resolved = resolve_sources(args)  # opens videos/cameras once: a bad one fails before any output
    out = _next_free(DEFAULT_OUT) if out is None else out
    tally = _run_with_bars(estimator, resolved, out, options, force)
    _print_summary(tally, out, show_fps)
    if save_json and datasets:
        console.print(
            f"{PREDICTIONS_FILE} uses the image ids of {', '.join(datasets)}: score it with `edgepose val "
            f"--pred {out / PREDICTIONS_FILE} --gt {datasets[0]}`",
            highlight=False, soft_wrap=True,
        )  # fmt: skip


def _coco_folders(sources: list[str]) -> tuple[list[str], dict[str, int], list[str]]:
    """SOURCE arguments with each COCO dataset folder (DIR with annotations.json, or DIR/images) as its
    image folder; {image path: ground-truth image id} of those images, so that `val --pred` scores
    predictions.json against that ground truth; and which arguments were such folders."""
    from edgepose.data.coco import ground_truth_ids

    args: list[str] = []
    image_ids: dict[str, int] = {}
    datasets: list[str] = []
    for arg in sources:
        found = ground_truth_ids(arg) if Path(arg).is_dir() else None
        if found is None:
            args.append(arg)
            continue
        image_dir, ids = found
        args.append(str(image_dir))
        image_ids.update(ids)
        datasets.append(arg)
    return args, image_ids, datasets


@dataclass
class _Tally:
    """What the run did, for the summary lines."""

    people: int = 0
    frames: int = 0
    skipped: int = 0
    timings: list[Timings] = field(default_factory=list)
    streams: list[SourceDone] = field(default_factory=list)  # finished videos and cameras


def _run_with_bars(
    estimator: PoseEstimator, sources: list[Source], out: Path, options: PredictOptions, force: bool
) -> _Tally:
    """`run_predict` into an atomic OUT, with one bar for the images and one per video or camera."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from edgepose.fsio import atomic_dir
    from edgepose.runtime.pipeline import FrameDone, Skipped, SourceDone, SourceStarted, run_predict
    from edgepose.runtime.sources import SourceKind

    tally = _Tally()
    n_images = sum(s.kind is SourceKind.IMAGE for s in sources)
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TextColumn("{task.fields[fps]}"), TimeElapsedColumn())  # fmt: skip
    with (
        atomic_dir(out, overwrite=force) as tmp,
        Progress(*columns, console=err_console, transient=False) as bar,
        _erased_on_error(bar) as progress,
    ):
        images_task = progress.add_task("images", total=n_images, fps="") if n_images else None
        task = images_task
        for event in run_predict(estimator, sources, tmp, options):
            if isinstance(event, SourceStarted) and event.source.kind is not SourceKind.IMAGE:
                task = progress.add_task(event.source.label, total=event.total, fps="")
            elif isinstance(event, SourceStarted):
                task = images_task
            elif isinstance(event, Skipped):
                tally.skipped += 1
                warn(f"skipped {event.reason}")
                progress.advance(task)  # type: ignore[arg-type]
            elif isinstance(event, FrameDone):
                tally.people, tally.frames = tally.people + len(event.result), tally.frames + 1
                tally.timings.append(event.result.timings)  # type: ignore[arg-type]
                fps = f"{event.fps:.1f} FPS" if event.source.kind is not SourceKind.IMAGE else ""
                progress.update(task, advance=1, fps=fps)  # type: ignore[arg-type]
            elif isinstance(event, SourceDone) and event.source.kind is not SourceKind.IMAGE:
                tally.streams.append(event)
    return tally


def _print_summary(tally: _Tally, out: Path, show_fps: bool) -> None:
    for event in tally.streams:
        name = out / event.output.name
        console.print(f"{event.source.label}: {event.frames} frames at {event.fps:.1f} FPS -> {name}")
    console.print(
        f"{tally.frames} image(s)/frame(s), {tally.people} people found, {tally.skipped} skipped; "
        f"outputs in {out}",
        highlight=False,
    )
    if show_fps and tally.timings:
        n = len(tally.timings)
        pre = sum(t.preprocess_ms for t in tally.timings) / n
        inf = sum(t.inference_ms for t in tally.timings) / n
        post = sum(t.postprocess_ms for t in tally.timings) / n
        console.print(
            f"mean per image: preprocess {pre:.1f} ms, inference {inf:.1f} ms, postprocess {post:.1f} ms "
            f"({1000.0 / max(1e-9, pre + inf + post):.1f} FPS model-only)",
            highlight=False,
        )
