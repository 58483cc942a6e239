"""Calibration images -> model input tensors, through the runtime's own preprocessing.

Calibration uses `edgepose.runtime.preprocess` (letterbox, BGR->RGB, CHW, scaling per
spec.input_format): exactly what deployment does, so calibration ranges and deployed inputs
cannot drift apart. Any size and any format OpenCV decodes (grayscale, BGRA, 16-bit) is accepted.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from pathlib import Path

import cv2
import numpy as np
from onnxruntime.quantization import CalibrationDataReader

from edgepose.errors import CalibrationError
from edgepose.runtime.preprocess import preprocess
from edgepose.spec import IMAGE_PATTERNS, INPUT_NAME, PoseSpec, image_files

MIN_CALIB = 4  # fewer and the ranges, the probe images and the bias statistics are guesses
RECOMMENDED_CALIB = 32
MAX_CALIB = 500  # more images add time, not accuracy: min/max and histograms saturate well before
_RANGE = f"{RECOMMENDED_CALIB}–{MAX_CALIB}"  # the recommended image count, as messages spell it
_HINT = f"add {_RANGE} representative images (any size/format) or pass --calib DIR"


def find_images(calib_dir: str | os.PathLike[str]) -> list[Path]:
    """Sorted image files in `calib_dir`, or in `calib_dir/images` when the folder holds a dataset."""
    root = Path(calib_dir)
    if not root.exists():
        raise CalibrationError(f"calibration folder {root} does not exist; {_HINT}")
    if not root.is_dir():
        raise CalibrationError(f"--calib {root} is a file, expected a folder of images; {_HINT}")
    for d in (root, root / "images"):
        if not d.is_dir():
            continue
        try:
            files = image_files(d)
        except OSError as exc:
            raise CalibrationError(f"cannot read calibration folder {d} ({exc.strerror}); {_HINT}") from exc
        if files:
            return files
    raise CalibrationError(
        f"no images in {root} (looked for {IMAGE_PATTERNS}, also in {root / 'images'}); {_HINT}"
    )


def select_images(paths: Sequence[Path], num: int | None) -> list[Path]:
    """A deterministic, evenly spread subset of `num` paths (all, capped at MAX_CALIB, when None)."""
    n = len(paths)
    if num is None:
        num = min(n, MAX_CALIB)
    if num < 1:
        raise CalibrationError(f"--num-calib must be >= 1, got {num}; use {_RANGE}")
    if num > n:
        folder = paths[0].parent if paths else "the folder"
        raise CalibrationError(
            f"--num-calib {num} asks for more images than {folder} holds ({n}); "
            f"lower --num-calib to <= {n} or add images"
        )
    idx = np.linspace(0, n - 1, num).round().astype(int)  # unique because num <= n
    return [paths[i] for i in idx]


def load_tensor(path: Path, spec: PoseSpec) -> np.ndarray:
    """One image file -> the (1, 3, H, W) model input tensor (dtype per spec.input_format)."""
    # IMREAD_UNCHANGED keeps alpha and 16-bit depth; preprocess normalises them to 8-bit BGR.
    data = np.fromfile(str(path), dtype=np.uint8) if path.is_file() else None
    img = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data is not None and data.size else None
    if img is None:
        raise CalibrationError(f"cannot decode calibration image {path}; remove it or re-save it as JPEG/PNG")
    tensor, _ = preprocess(img, spec)
    return tensor


class CalibrationSet:
    """The chosen calibration images of one model; yields input feeds for onnxruntime."""

    def __init__(
        self, calib_dir: str | os.PathLike[str], spec: PoseSpec, num_calib: int | None = None
    ) -> None:
        self.spec = spec
        self.calib_dir = Path(calib_dir)  # named in messages (too few images)
        self.paths = select_images(find_images(calib_dir), num_calib)

    def __len__(self) -> int:
        return len(self.paths)

    def tensors(self, start: int = 0, stop: int | None = None) -> Iterator[np.ndarray]:
        for p in self.paths[start:stop]:
            yield load_tensor(p, self.spec)

    def subset(self, num: int) -> list[np.ndarray]:
        """`num` tensors spread evenly over the set (for sensitivity measurements)."""
        return [load_tensor(p, self.spec) for p in select_images(self.paths, min(num, len(self.paths)))]

    def reader(self, start: int = 0, stop: int | None = None) -> CalibrationReader:
        """A reader over images [start, stop) of the set."""
        return CalibrationReader(self, start, stop)


class CalibrationReader(CalibrationDataReader):
    """onnxruntime's reader protocol over a CalibrationSet: one {INPUT_NAME: tensor} feed per image."""

    def __init__(self, calib: CalibrationSet, start: int = 0, stop: int | None = None) -> None:
        self.calib, self.start, self.stop = calib, start, stop
        self._it: Iterator[np.ndarray] | None = None

    def __len__(self) -> int:
        return len(range(len(self.calib))[self.start : self.stop])

    def get_next(self) -> dict[str, np.ndarray] | None:
        if self._it is None:
            self._it = self.calib.tensors(self.start, self.stop)
        t = next(self._it, None)
        return None if t is None else {INPUT_NAME: t}

    def rewind(self) -> None:
        self._it = None


def check_calibration(calib: CalibrationSet) -> list[str]:
    """CalibrationError when fewer than MIN_CALIB images; warnings (returned) for doubtful images."""
    if len(calib) < MIN_CALIB:
        raise CalibrationError(
            f"{len(calib)} calibration image(s) in {calib.calib_dir} is too few: ranges and the measured "
            f"checks need at least {MIN_CALIB}; add images ({_RANGE} recommended) or pass --calib DIR"
        )
    notes = []
    if len(calib) < RECOMMENDED_CALIB:
        notes.append(
            f"warning: {len(calib)} calibration images: ranges from fewer than {RECOMMENDED_CALIB} are a "
            f"guess; add images like the deployment's ({_RANGE})"
        )
    h, w = calib.spec.input_size
    small = gray = 0
    for p in calib.paths:
        shape = image_shape(p)
        if shape is None:
            continue
        if max(shape[0] / h, shape[1] / w) < 0.5:
            small += 1
        if len(shape) == 2 or shape[2] == 1:
            gray += 1
    if small > len(calib) // 2:
        notes.append(
            f"warning: {small} of {len(calib)} calibration images are under half the model input "
            f"({h}x{w}) and get upscaled; calibrate with frames at the deployment's size"
        )
    if gray > len(calib) // 2:
        notes.append(
            f"warning: {gray} of {len(calib)} calibration images are grayscale but the model reads colour; "
            "calibrate with frames as the camera delivers them"
        )
    return notes


def image_shape(path: Path) -> tuple[int, ...] | None:
    """(H, W[, C]) of an image file as OpenCV decodes it unchanged; None if unreadable."""
    data = np.fromfile(str(path), dtype=np.uint8)
    img = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data.size else None
    return None if img is None else tuple(img.shape)
