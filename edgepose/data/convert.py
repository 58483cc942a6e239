"""Dataset format detection, one reader front door, and COCO <-> YOLO-pose conversion."""

from __future__ import annotations

import dataclasses
import enum
import os
from pathlib import Path

from edgepose.data.types import PoseDataset
from edgepose.errors import DataError
from edgepose.fsio import atomic_dir
from edgepose.spec import ANNOTATIONS_FILE


class DataFormat(str, enum.Enum):
    COCO = "coco"
    YOLO = "yolo"


def coco_json(src: str | os.PathLike[str]) -> Path:
    """The COCO keypoints JSON a path names: DIR/ANNOTATIONS_FILE for a dataset folder that holds one (the
    layout `data synth` and `data convert --to coco` write), else the path itself (checked by its reader)."""
    p = Path(src)
    return p / ANNOTATIONS_FILE if p.is_dir() and (p / ANNOTATIONS_FILE).is_file() else p


def detect_format(src: str | os.PathLike[str]) -> tuple[DataFormat, Path]:
    """(format, the path its reader takes): a .json file or a folder with annotations.json is COCO,
    a folder with labels/ is YOLO-pose."""
    p = Path(src)
    if not p.exists():
        raise DataError(f"{p}: no such file or folder; pass a COCO .json, or a dataset folder")
    if p.is_file():
        if p.suffix.lower() == ".json":
            return DataFormat.COCO, p
        raise DataError(
            f"{p}: not a dataset; pass a COCO .json file or a folder with {ANNOTATIONS_FILE} or labels/"
        )
    found = coco_json(p)
    if found != p:
        return DataFormat.COCO, found
    if (p / "labels").is_dir():
        return DataFormat.YOLO, p
    raise DataError(
        f"{p}: neither {ANNOTATIONS_FILE} (COCO) nor labels/ (YOLO-pose) found in this folder; "
        "pass a dataset folder or the COCO .json itself"
    )


def read_dataset(src: str | os.PathLike[str]) -> PoseDataset:
    """Read a COCO or YOLO-pose dataset, whichever `src` is."""
    fmt, path = detect_format(src)
    if fmt is DataFormat.COCO:
        from edgepose.data.coco import read_coco

        return read_coco(path)
    from edgepose.data.yolo import read_yolo

    return read_yolo(path)


def _write_coco_dir(dataset: PoseDataset, out_dir: Path, overwrite: bool) -> Path:
    from edgepose.data.coco import write_coco
    from edgepose.data.yolo import flat_names, link_or_copy

    names = flat_names(dataset)
    with atomic_dir(out_dir, overwrite=overwrite) as tmp:
        (tmp / "images").mkdir()
        for name, rec in zip(names, dataset.records, strict=True):
            link_or_copy(dataset.image_path(rec), tmp / "images" / name)
        records = [dataclasses.replace(r, file_name=n) for r, n in zip(dataset.records, names, strict=True)]
        flat = dataclasses.replace(dataset, image_dir=out_dir / "images", records=records)
        write_coco(flat, tmp / ANNOTATIONS_FILE)
    return out_dir


def convert(
    src: str | os.PathLike[str], dst: str | os.PathLike[str], to: DataFormat, *, overwrite: bool = False
) -> Path:
    """Convert a dataset to `to`, writing the folder `dst` atomically; returns `dst`.

    COCO output is `dst/images/` + `dst/annotations.json`; YOLO output is `dst/images/`, `dst/labels/`,
    `dst/data.yaml`. Images are hard-linked or copied byte for byte, never re-encoded. From YOLO input
    the COCO `area` is the box area (YOLO keeps no segmentation, and COCO uses the box area itself
    when an annotation has no mask).
    """
    to = DataFormat(to)
    dst = Path(dst)
    src_path = Path(src).resolve()
    if dst.resolve() == src_path or src_path in dst.resolve().parents:
        raise DataError(f"{dst}: the output must not be the source dataset or inside it; choose another DST")
    dataset = read_dataset(src)
    if to is DataFormat.YOLO:
        from edgepose.data.yolo import write_yolo

        return write_yolo(dataset, dst, overwrite=overwrite)
    return _write_coco_dir(dataset, dst, overwrite)
