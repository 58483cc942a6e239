"""What `edgepose bench` uses with no arguments: the shipped model and calibration images, a fresh val set."""

from __future__ import annotations

from pathlib import Path

from edgepose.bench.progress import StageProgress
from edgepose.errors import DataError, ModelFileError
from edgepose.spec import ANNOTATIONS_FILE

_PROJECT_ROOT = Path(__file__).parents[2]
DEFAULT_MODEL = Path("models") / "edgepose-n.pt"
DEFAULT_CALIB = Path("calibration")
# The project's validation seed (never used for training); 256 px is the default model input.
VAL_SEED, VAL_SIZE = 2, 256
# 200 images: the whole default demo (export + 3 quantizations + 4 evaluations) stays under 5 minutes on
# 2 cores, and 200 images hold ~800 people, enough for AP differences of about a point to be visible.
DEFAULT_NUM_IMAGES = 200


def _shipped(rel: Path) -> Path | None:
    """`rel` in the current folder, else in the project checkout edgepose is installed from."""
    for base in (Path.cwd(), _PROJECT_ROOT):
        if (base / rel).exists():
            return base / rel
    return None


def default_model() -> Path:
    path = _shipped(DEFAULT_MODEL)
    if path is None:
        raise ModelFileError(
            f"the shipped default model {DEFAULT_MODEL} was not found (looked in {Path.cwd()} and "
            f"{_PROJECT_ROOT}); pass a model: `edgepose bench MODEL.pt` or `edgepose bench MODEL.onnx`"
        )
    return path


def default_calib() -> Path:
    path = _shipped(DEFAULT_CALIB)
    if path is None:
        raise DataError(f"the shipped calibration folder {DEFAULT_CALIB} was not found; pass --calib DIR")
    return path


def default_val(
    cache_dir: Path, num_images: int = DEFAULT_NUM_IMAGES, progress: StageProgress | None = None
) -> Path:
    """A synthetic val set (seed 2, 256 px) in the cache folder, generated on first use (deterministic)."""
    from edgepose.data.synth import SYNTH_VERSION, synthesize

    # The generator version is in the key: a cached set of another version is never reused silently.
    out = cache_dir / f"val-v{SYNTH_VERSION}-seed{VAL_SEED}-{VAL_SIZE}px-{num_images}"
    if (out / ANNOTATIONS_FILE).is_file():
        return out
    cache_dir.mkdir(parents=True, exist_ok=True)
    cb = (lambda done: progress(done, num_images)) if progress else None
    return synthesize(out, num_images, VAL_SIZE, VAL_SEED, overwrite=True, progress=cb)
