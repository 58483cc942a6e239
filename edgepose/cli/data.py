"""`edgepose data synth | preview | convert`: make, look at and convert pose datasets."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from edgepose.cli._app import app
from edgepose.cli._common import ForceOpt, console, err_console, handle_errors
from edgepose.data.convert import DataFormat
from edgepose.errors import ConfigError

data_app = typer.Typer(help="Make, preview and convert pose datasets (COCO keypoints JSON, YOLO-pose).")
app.add_typer(data_app, name="data")


def _at_least(value: int, minimum: int, option: str) -> None:
    # Checked here rather than with typer's min=: a ConfigError is one line, a click usage error is a box.
    if value < minimum:
        raise ConfigError(f"{option} {value} is too small; it must be at least {minimum}")


@data_app.command()
@handle_errors
def synth(
    out: Annotated[Path, typer.Option("--out", help="Output folder: images/ + annotations.json.")],
    num_images: Annotated[int, typer.Option("--num-images", help="Number of images.")] = 200,
    size: Annotated[int, typer.Option("--size", help="Image width and height in pixels.")] = 256,
    seed: Annotated[int, typer.Option("--seed", help="Random seed; same seed, same bytes.")] = 0,
    force: ForceOpt = False,
) -> None:
    """Write a synthetic multi-person pose dataset in COCO keypoints format."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from edgepose.data.coco import read_coco
    from edgepose.data.convert import coco_json
    from edgepose.data.synth import synthesize

    start = time.perf_counter()  # synthesize() checks --num-images and --size before writing anything
    columns = (TextColumn("synth"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=err_console, transient=True) as progress:
        task = progress.add_task("synth", total=num_images)
        path = synthesize(
            out,
            num_images,
            size=size,
            seed=seed,
            overwrite=force,
            progress=lambda done: progress.update(task, completed=done),
        )
    seconds = time.perf_counter() - start
    people = sum(r.num_people for r in read_coco(coco_json(path)).records)
    console.print(
        f"wrote {path}: {num_images} images, {people} people in {seconds:.1f} s "
        f"({num_images / max(seconds, 1e-9):.0f} images/s)",
        highlight=False,
        soft_wrap=True,
    )


@data_app.command()
@handle_errors
def preview(
    src: Annotated[Path, typer.Argument(help="Dataset: a folder (COCO or YOLO-pose) or a COCO .json.")],
    out: Annotated[Path, typer.Option("--out", help="Output image (.jpg or .png).")] = Path("grid.jpg"),
    num: Annotated[int, typer.Option("--num", help="Number of images in the grid.")] = 16,
    cols: Annotated[int, typer.Option("--cols", help="Images per row.")] = 4,
    tile: Annotated[int, typer.Option("--tile", help="Tile size in pixels.")] = 256,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the image sample.")] = 0,
    force: ForceOpt = False,
) -> None:
    """Draw ground-truth boxes and skeletons on a grid of images."""
    from edgepose.data.convert import read_dataset
    from edgepose.data.preview import check_output, grid_shape, preview_grid

    _at_least(num, 1, "--num")
    _at_least(cols, 1, "--cols")
    _at_least(tile, 32, "--tile")
    check_output(out, force=force)  # before reading a large dataset
    dataset = read_dataset(src)
    path = preview_grid(dataset, out, num=num, cols=cols, tile=tile, seed=seed)
    rows, c = grid_shape(min(num, len(dataset)), cols)
    console.print(f"wrote {path}: {rows} x {c} images of {len(dataset)}", highlight=False, soft_wrap=True)


@data_app.command()
@handle_errors
def convert(
    src: Annotated[
        Path, typer.Argument(help="Source: COCO .json / folder with annotations.json, or YOLO folder.")
    ],
    dst: Annotated[Path, typer.Argument(help="Output folder (written atomically).")],
    to: Annotated[DataFormat, typer.Option("--to", help="Output format.", case_sensitive=False)],
    force: ForceOpt = False,
) -> None:
    """Convert a dataset between COCO keypoints JSON and YOLO-pose labels."""
    from edgepose.data.convert import convert as convert_dataset

    path = convert_dataset(src, dst, to, overwrite=force)
    console.print(f"wrote {path} ({to.value})", highlight=False, soft_wrap=True)
