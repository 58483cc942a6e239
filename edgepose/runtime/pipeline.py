"""The work behind `edgepose predict`: sources in, annotated files and COCO results out.

A generator of events, so the CLI owns the progress bar and the printing and this stays a plain,
testable library function.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from edgepose.errors import DataError, OutputError
from edgepose.runtime.draw import draw_poses
from edgepose.runtime.estimator import PoseEstimator
from edgepose.runtime.results import PoseResult
from edgepose.runtime.sources import Source, SourceKind, VideoReader, VideoWriter, read_image
from edgepose.runtime.timing import FpsMeter
from edgepose.spec import FILES_FILE, PREDICTIONS_FILE


@dataclass(frozen=True)
class PredictOptions:
    conf: float | None = None
    iou: float | None = None
    kpt_thr: float = 0.5
    save_json: bool = False
    show_fps: bool = False
    # Resolved image path -> the ground truth's image id (images of a COCO dataset folder), so the
    # results file scores against that ground truth; every other image or frame gets a fresh id above them.
    image_ids: Mapping[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class SourceStarted:
    source: Source
    total: int | None  # frames to expect; None for a camera or an unknown count


@dataclass(frozen=True)
class FrameDone:
    source: Source
    image_id: int
    result: PoseResult
    fps: float  # rolling end-to-end frame rate of this source (read, infer, draw, write)


@dataclass(frozen=True)
class Skipped:
    source: Source
    reason: str


@dataclass(frozen=True)
class SourceDone:
    source: Source
    frames: int
    fps: float  # mean over the whole source
    output: Path


Event = SourceStarted | FrameDone | Skipped | SourceDone


def _unique(out_dir: Path, name: str, taken: set[str]) -> Path:
    """`name`, or `stem_1.ext`, `stem_2.ext`, ... when two sources share a file name."""
    stem, suffix = Path(name).stem, Path(name).suffix
    candidate, i = name, 0
    while candidate in taken:
        i += 1
        candidate = f"{stem}_{i}{suffix}"
    taken.add(candidate)
    return out_dir / candidate


def run_predict(
    estimator: PoseEstimator, sources: Sequence[Source], out_dir: Path, options: PredictOptions
) -> Iterator[Event]:
    """Predict on every source, writing annotated outputs (and JSON with `save_json`) into `out_dir`.

    `out_dir` should be the temporary folder of `fsio.atomic_dir`. A camera runs until Ctrl-C, which
    ends its video normally; anywhere else Ctrl-C propagates.
    """
    coco: list[dict[str, object]] = []
    files: dict[str, str] = {}
    taken: set[str] = set()
    fresh = max(options.image_ids.values(), default=-1) + 1  # 0, 1, ... in processing order without them

    def next_id(path: Path | None) -> int:
        nonlocal fresh
        if path is not None and (known := options.image_ids.get(str(path.resolve()))) is not None:
            return known
        fresh += 1
        return fresh - 1

    def predict(frame: np.ndarray, label: str, image_id: int) -> PoseResult:
        result = estimator(frame, conf=options.conf, iou=options.iou)
        if options.save_json:
            coco.extend(result.to_coco(image_id))
            files[str(image_id)] = label
        return result

    def annotate(frame: np.ndarray, result: PoseResult, fps: float) -> np.ndarray:
        text = f"{fps:.1f} FPS" if options.show_fps and fps > 0 else None
        return draw_poses(frame, result, options.kpt_thr, label=text)

    for source in sources:
        if source.kind is SourceKind.IMAGE:
            assert source.path is not None  # an IMAGE source always has a path
            yield SourceStarted(source, 1)
            try:
                image = read_image(source.path)
            except DataError as exc:
                if not source.in_folder:
                    raise
                yield Skipped(source, str(exc))
                continue
            start = time.perf_counter()
            image_id = next_id(source.path)
            result = predict(image, str(source.path), image_id)
            fps = 1.0 / max(1e-9, time.perf_counter() - start)
            target = _unique(out_dir, source.path.name, taken)
            # Encode, then write through Python: cv2.imwrite ignores a full disk and leaves a truncated file;
            # write_bytes raises OSError(ENOSPC), which atomic_dir turns into one line and removes the folder.
            ok, buf = cv2.imencode(target.suffix, annotate(image, result, fps))
            if not ok:
                raise OutputError(f"cannot write {target.name} into the output folder; choose another --out")
            target.write_bytes(buf.tobytes())
            yield FrameDone(source, image_id, result, fps)
            yield SourceDone(source, 1, fps, target)
            continue
        stem = f"camera{source.camera}" if source.kind is SourceKind.CAMERA else Path(source.label).stem
        target = _unique(out_dir, stem + ".mp4", taken)
        with VideoReader(source) as reader, VideoWriter(target, reader.fps, reader.size) as writer:
            yield SourceStarted(source, reader.frame_count)
            meter, frames, start = FpsMeter(), 0, time.perf_counter()
            try:
                for idx, frame in enumerate(reader):
                    image_id = next_id(None)
                    result = predict(frame, f"{source.label}#frame={idx}", image_id)
                    writer.write(annotate(frame, result, meter.fps))
                    meter.tick()
                    frames += 1
                    yield FrameDone(source, image_id, result, meter.fps)
            except KeyboardInterrupt:
                if source.kind is not SourceKind.CAMERA:  # Ctrl-C is how a camera stream ends
                    raise
            elapsed = time.perf_counter() - start
            yield SourceDone(source, frames, frames / elapsed if elapsed > 0 else 0.0, target)
    if options.save_json:
        (out_dir / PREDICTIONS_FILE).write_text(json.dumps(coco), encoding="utf-8")
        (out_dir / FILES_FILE).write_text(json.dumps(files, indent=1), encoding="utf-8")
