"""What `predict` reads: image files, folders of images, video files and cameras (OpenCV)."""

from __future__ import annotations

import contextlib
import enum
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from edgepose.errors import DataError, OutputError
from edgepose.spec import IMAGE_PATTERNS, image_files

VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".m4v", ".webm", ".mpg", ".mpeg", ".wmv")
DEFAULT_FPS = 30.0  # cameras and some containers report 0 fps; the written video needs a rate


class SourceKind(str, enum.Enum):
    IMAGE = "image"
    VIDEO = "video"
    CAMERA = "camera"


@dataclass(frozen=True)
class Source:
    """One thing to predict on. Images found in a folder are skippable: a bad one is a warning."""

    kind: SourceKind
    path: Path | None = None
    camera: int | None = None
    in_folder: bool = False

    @property
    def label(self) -> str:
        return f"camera {self.camera}" if self.kind is SourceKind.CAMERA else str(self.path)


@contextlib.contextmanager
def _quiet_opencv() -> Iterator[None]:
    """Silence OpenCV's own stderr warnings while probing; our errors say what failed instead."""
    # FFmpeg logs on its own ("moov atom not found"), past OpenCV's logger; OpenCV reads this variable
    # when its FFmpeg backend first loads, which is here: predict opens videos only through this.
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")  # AV_LOG_QUIET
    level = cv2.utils.logging.getLogLevel()
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)
    try:
        yield
    finally:
        cv2.utils.logging.setLogLevel(level)


def resolve_sources(args: Sequence[str]) -> list[Source]:
    """Expand SOURCE arguments (files, folders sorted by name, integer camera indices) and check them.

    Videos and cameras are opened once here, so a bad one fails before any output is written.
    """
    sources: list[Source] = []
    for arg in args:
        path = Path(arg)
        if arg.strip().isdigit() and not path.exists():
            source = Source(SourceKind.CAMERA, camera=int(arg))
            with open_video(source):
                pass
            sources.append(source)
        elif path.is_dir():
            try:
                files = image_files(path)
            except OSError as exc:
                raise DataError(
                    f"{path}: cannot read the folder ({exc.strerror}); check its permissions"
                ) from exc
            if not files:
                raise DataError(
                    f"no images in {path} (looked for {IMAGE_PATTERNS}); add images or pass image/video files"
                )
            sources += [Source(SourceKind.IMAGE, path=p, in_folder=True) for p in files]
        elif path.is_file():
            if path.suffix.lower() in VIDEO_SUFFIXES:
                source = Source(SourceKind.VIDEO, path=path)
                with open_video(source):
                    pass
                sources.append(source)
            else:
                sources.append(Source(SourceKind.IMAGE, path=path))
        else:
            raise DataError(f"{arg}: no such file or folder (nor a camera index); check the SOURCE path")
    if not sources:
        raise DataError("no SOURCE given; pass image files, folders, video files or a camera index")
    return sources


def read_image(path: Path) -> np.ndarray:
    """Read an image file as (H, W, 3) uint8 BGR."""
    try:
        data = np.fromfile(path, dtype=np.uint8)
    except OSError as exc:
        raise DataError(f"{path}: cannot read the file ({exc.strerror}); check its permissions") from exc
    image = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    if image is None:
        raise DataError(
            f"{path}: not a readable image (corrupt, empty or an unsupported format); "
            "replace the file or leave it out"
        )
    return image


class VideoReader:
    """Frames of a video file or camera as (H, W, 3) uint8 BGR; the first frame is read on open."""

    def __init__(self, source: Source) -> None:
        self.source = source
        target: int | str = source.camera if source.kind is SourceKind.CAMERA else str(source.path)
        with _quiet_opencv():
            self._cap = cv2.VideoCapture(target)
            ok, frame = self._cap.read() if self._cap.isOpened() else (False, None)
        if not ok or frame is None:
            self._cap.release()
            if source.kind is SourceKind.CAMERA:
                raise DataError(
                    f"camera {source.camera} did not open (no such device, or busy); "
                    "check the index (ls /dev/video*) and that no other program uses it"
                )
            raise DataError(
                f"{source.path}: not a readable video (corrupt, empty or an unsupported codec); "
                "re-encode it (e.g. ffmpeg -i IN -c:v libx264 OUT.mp4) or leave it out"
            )
        self._first: np.ndarray | None = frame
        fps = self._cap.get(cv2.CAP_PROP_FPS)
        self.fps = fps if fps and fps > 0 else DEFAULT_FPS
        count = int(self._cap.get(cv2.CAP_PROP_FRAME_COUNT))
        self.frame_count: int | None = count if count > 0 and source.kind is SourceKind.VIDEO else None
        self.size = (frame.shape[1], frame.shape[0])  # (W, H) as cv2.VideoWriter wants it

    def __iter__(self) -> Iterator[np.ndarray]:
        if self._first is not None:
            frame, self._first = self._first, None
            yield frame
        while True:
            ok, frame = self._cap.read()
            if not ok:
                return
            yield frame

    def close(self) -> None:
        self._cap.release()

    def __enter__(self) -> VideoReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_video(source: Source) -> VideoReader:
    return VideoReader(source)


class VideoWriter:
    """An mp4v video writer that fails with one line instead of silently writing nothing."""

    def __init__(self, path: Path, fps: float, size: tuple[int, int]) -> None:
        self.path = path
        self._writer = cv2.VideoWriter(os.fspath(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, size)
        if not self._writer.isOpened():
            raise OutputError(
                f"cannot write video {path} (OpenCV has no mp4v encoder here); choose another --out"
            )

    def write(self, frame: np.ndarray) -> None:
        self._writer.write(frame)

    def close(self) -> None:
        self._writer.release()

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
