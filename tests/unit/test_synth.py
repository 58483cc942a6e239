"""Synthetic generator: determinism, geometry, visibility from rendered occlusion, range coverage."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from pycocotools.coco import COCO

from edgepose.data.synth import SynthSample, render_sample, synthesize
from edgepose.errors import ConfigError, OutputError
from edgepose.spec import COCO_KEYPOINTS, COCO_SKELETON

SIZE = 96
N_SAMPLES = 150


@pytest.fixture(scope="module")
def samples():
    return [render_sample(110, i, SIZE) for i in range(N_SAMPLES)]


def _files(d: Path) -> dict[str, bytes]:
    return {str(p.relative_to(d)): p.read_bytes() for p in sorted(d.rglob("*")) if p.is_file()}


# sha256 of the generator's output, recorded from the generator of commit 91232a6 (before the speed-ups
# that kept its output). The train and val sets are generated with seeds 1 and 2; a change to a pixel,
# an annotation or the random draw sequence changes those datasets and must be a deliberate generator
# version change, so it fails here. The digests depend on the pinned numpy and opencv-python-headless
# builds on x86-64 (numpy's SIMD trig and OpenBLAS kernels, OpenCV's IPP resize, libjpeg-turbo).
PINNED_SAMPLES = {
    (1, 0, 256): "847751960e0f9a6de7ff788a35aad6a032f66c7720cc1a926a16dc59b89ad610",
    (1, 1, 256): "3152c9c489bdb452ac983f62cd1cde4662ddc03b05e0febf931b3b3e8726a95c",
    (1, 2, 256): "87d61d8d6b021a9dfa6436216c60d08f2c2f423c4b33a4e94b9b95744022236a",
    (1, 3, 256): "67484b883dd3cd02056e699da9ef93114bdf348921d0742219b0e2d6901829bb",
    (1, 4, 256): "43c26add27ea41bf7b11d8750c8db9acdf650f3f70c27e2715dc087d3ef5721d",
    (2, 0, 320): "36f21ef40616d339aa503691dfe45f5a5117d3601018706fa9563bb80ea8c3a8",
    (2, 1, 320): "a29170c0607d67e69d10a1493ca3c07983bd138507d6c37d850fa889c4baa125",
    (2, 2, 320): "bfe2b8096b47bf1cb915bb7f1bc64641b5fbdb4154a7f4aa4eddc33c5bbc6f2a",
}
# synthesize(out, 3, size=256, seed=1): the JPEG files and annotations.json, as written
PINNED_DATASET = "02d6fdf7ce0d3fd05ca4499dc014199209910f8feb014c5054e983f8443ae64f"


def _sample_digest(s: SynthSample) -> str:
    h = hashlib.sha256()
    for a in (s.image, s.boxes, s.keypoints, s.areas, s.masks, s.self_occluded, s.heights):
        h.update(f"{a.dtype}{a.shape}".encode())
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


@pytest.mark.parametrize(("seed", "index", "size"), list(PINNED_SAMPLES))
def test_output_is_pinned(seed: int, index: int, size: int) -> None:
    assert _sample_digest(render_sample(seed, index, size)) == PINNED_SAMPLES[seed, index, size]


def test_written_dataset_is_pinned(tmp_path: Path) -> None:
    files = _files(synthesize(tmp_path / "pinned", 3, size=256, seed=1))
    h = hashlib.sha256()
    for name, data in files.items():  # sorted by path
        h.update(name.encode())
        h.update(data)
    assert h.hexdigest() == PINNED_DATASET


def test_same_seed_identical_bytes_different_seed_differs(tmp_path: Path, synth_dataset: Path) -> None:
    again = _files(synthesize(tmp_path / "a", 12, size=128, seed=101))
    first = _files(synth_dataset)
    assert sorted(first) == sorted(again) == ["annotations.json"] + [f"images/{i:06d}.jpg" for i in range(12)]
    assert first == again
    other = _files(synthesize(tmp_path / "b", 12, size=128, seed=102))
    assert other["annotations.json"] != first["annotations.json"]
    assert sum(other[k] != first[k] for k in first if k.startswith("images/")) == 12


def test_chunking_does_not_change_images(tmp_path: Path, synth_dataset: Path) -> None:
    # image i depends only on (seed, i): a 3-image run reproduces the first 3 of the 12-image run
    small = _files(synthesize(tmp_path / "s", 3, size=128, seed=101))
    full = _files(synth_dataset)
    for i in range(3):
        assert small[f"images/{i:06d}.jpg"] == full[f"images/{i:06d}.jpg"]


def test_coco_json_schema_and_pycocotools_loads_it(synth_dataset: Path) -> None:
    data = json.loads((synth_dataset / "annotations.json").read_text())
    (cat,) = data["categories"]
    assert cat["id"] == 1 and cat["name"] == "person"
    assert cat["keypoints"] == list(COCO_KEYPOINTS)
    assert cat["skeleton"] == [[a + 1, b + 1] for a, b in COCO_SKELETON]
    assert [im["id"] for im in data["images"]] == list(range(1, 13))
    assert all(im["width"] == im["height"] == 128 for im in data["images"])
    anns = data["annotations"]
    assert len(anns) >= 12
    assert sorted(a["id"] for a in anns) == list(range(1, len(anns) + 1))
    for a in anns:
        kp = np.array(a["keypoints"], float).reshape(17, 3)
        assert a["num_keypoints"] == int((kp[:, 2] > 0).sum()) > 0
        assert set(kp[:, 2].tolist()) <= {0.0, 1.0, 2.0}
        assert (kp[kp[:, 2] == 0] == 0).all()  # v=0 written as 0, 0, 0
        assert a["iscrowd"] == 0 and a["category_id"] == 1
        _, _, w, h = a["bbox"]
        assert 0 < a["area"] <= w * h + 1e-6
    coco = COCO(str(synth_dataset / "annotations.json"))
    assert len(coco.getImgIds()) == 12 and len(coco.getAnnIds()) == len(anns)


def test_visible_keypoints_inside_and_covered_by_box(samples) -> None:
    n_people = 0
    for s in samples:
        for box, kp in zip(s.boxes, s.keypoints, strict=True):
            n_people += 1
            lab = kp[kp[:, 2] > 0]
            assert ((lab[:, :2] >= 0) & (lab[:, :2] < SIZE)).all()
            vis = kp[kp[:, 2] == 2, :2]
            assert (vis >= box[:2] - 1).all() and (vis <= box[2:] + 1).all()
    assert n_people > 300


def test_visibility_matches_rendered_occlusion(samples) -> None:
    counts = {0: 0, 1: 0, 2: 0}
    n_self = 0
    for s in samples:
        for kp, mask, selfocc, area, box in zip(
            s.keypoints, s.masks, s.self_occluded, s.areas, s.boxes, strict=True
        ):
            ix = np.clip(np.round(kp[:, 0]), 0, SIZE - 1).astype(int)
            iy = np.clip(np.round(kp[:, 1]), 0, SIZE - 1).astype(int)
            on_mask = mask[iy, ix]
            v = kp[:, 2]
            assert on_mask[v == 2].all()  # seen = on this person's visible pixels
            assert (
                ~on_mask[v == 1] | selfocc[v == 1]
            ).all()  # hidden by another person/occluder, or own body
            assert (v[selfocc] == 1).all()
            assert area == mask.sum()
            ys, xs = np.nonzero(mask)
            np.testing.assert_array_equal(box, [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1])
            for k in counts:
                counts[k] += int((v == k).sum())
            n_self += int(selfocc.sum())
        # masks are disjoint: each pixel is owned by at most one person
        if len(s.masks):
            assert s.masks.sum(0).max() <= 1
    total = sum(counts.values())
    assert 0.08 < counts[1] / total < 0.45, counts  # occlusion is common but not dominant
    assert 0.05 < counts[0] / total < 0.4, counts  # truncation at the borders happens
    assert n_self > 50


def test_counts_and_heights_span_the_ranges(samples) -> None:
    counts = [len(s.boxes) for s in samples]
    assert set(counts) == set(range(9))
    assert np.mean(counts) > 2.0
    heights = np.concatenate([s.heights for s in samples]) / SIZE
    assert heights.min() < 0.07 and heights.max() > 0.85
    assert heights.min() >= 0.05 and heights.max() < 0.9
    frac = [np.mean((heights >= lo) & (heights < hi)) for lo, hi in ((0.05, 0.15), (0.15, 0.5), (0.5, 0.9))]
    assert 0.05 < frac[0] < 0.3 and 0.35 < frac[1] < 0.65 and 0.2 < frac[2] < 0.5, frac


def test_images_vary_in_brightness_and_texture(samples) -> None:
    means = np.array([s.image.mean() for s in samples])
    stds = np.array([s.image.std() for s in samples])
    assert means.max() - means.min() > 60
    assert stds.min() > 8  # never a flat canvas


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [({"num_images": 0}, "--num-images must be >= 1, got 0"), ({"size": 16}, "--size must be >= 32"),
     ({"seed": -1}, "--seed must be an integer >= 0, got -1")],
)  # fmt: skip
def test_bad_arguments_raise_and_leave_nothing(tmp_path: Path, kwargs: dict, needle: str) -> None:
    args = {"num_images": 2, "size": 64, "seed": 104} | kwargs
    with pytest.raises(ConfigError, match=needle):
        synthesize(tmp_path / "out", args["num_images"], size=args["size"], seed=args["seed"])
    assert list(tmp_path.iterdir()) == []


def test_existing_output_needs_overwrite(tmp_path: Path) -> None:
    out = synthesize(tmp_path / "out", 1, size=64, seed=106)
    before = _files(out)
    with pytest.raises(OutputError, match="already exists"):
        synthesize(out, 2, size=64, seed=107)
    assert _files(out) == before
    synthesize(out, 2, size=64, seed=107, overwrite=True)
    after = _files(out)
    assert sorted(after) == ["annotations.json", "images/000000.jpg", "images/000001.jpg"]
    assert after["images/000000.jpg"] != before["images/000000.jpg"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # no temporary or old folders left


def test_interrupt_leaves_no_partial_directory(tmp_path: Path) -> None:
    seen = []

    def progress(n: int) -> None:
        seen.append(n)
        if n == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        synthesize(tmp_path / "out", 5, size=64, seed=105, progress=progress)
    assert seen == [1, 2]
    assert list(tmp_path.iterdir()) == []
