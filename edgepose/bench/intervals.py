"""AP of any multiset of images from COCOeval's per-image results: folds pooled, bootstrap intervals of ΔAP.

COCOeval scores each image on its own (`evaluate`: OKS matching per image, category and area range) and
only then pools them (`accumulate`: one precision/recall curve over all the images' detections). So the AP
of any selection of images - several evaluation runs pooled, or a bootstrap resample that draws an image
twice - is `accumulate` over those images' per-image results, with no new matching. The selection is
handed to pycocotools' own `accumulate` as positions (an image drawn twice is two entries, each counting
its people and detections), the way edgepose.bench.cocostream hands it chunks; a test pins the AP of the
whole set to COCOeval's.
"""

from __future__ import annotations

import contextlib
import copy
import io
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from edgepose.errors import ConfigError

AREA_ALL = "all"  # the area range the AP column is read at (pycocotools' summarize: stats[0])
BOOTSTRAP_RESAMPLES = 1000
BOOTSTRAP_SEED = 0
BOOTSTRAP_LEVEL = 0.95
# Params compared before images of two evaluations are pooled: a different OKS or threshold would mix scales.
_SAME = ("iouThrs", "recThrs", "maxDets", "kpt_oks_sigmas", "catIds")


@dataclass(frozen=True)
class ImageEvals:
    """One model's per-image COCOeval results at area range 'all', by image id: what its AP is made of."""

    params: Any  # pycocotools Params of the evaluation, reduced to area range 'all'
    per_image: Mapping[int, dict | None]  # image id -> evalImg (None: no person and no detection there)

    @classmethod
    def from_cocoeval(cls, params: Any, per_area: Sequence[Mapping[int, dict | None]]) -> ImageEvals:
        """From `params` of an evaluation and its evalImgs as [area range][image id] (cocostream's layout)."""
        a = list(params.areaRngLbl).index(AREA_ALL)
        p = copy.deepcopy(params)
        p.areaRng, p.areaRngLbl = [params.areaRng[a]], [AREA_ALL]
        return cls(p, dict(per_area[a]))

    @property
    def image_ids(self) -> list[int]:
        return sorted(self.per_image)

    @property
    def people(self) -> int:
        """People the AP counts (not crowd, with a labelled keypoint): COCOeval's gtIgnore == 0."""
        return sum(
            int(np.count_nonzero(e["gtIgnore"] == 0)) for e in self.per_image.values() if e is not None
        )

    def subset(self, image_ids: Iterable[int]) -> ImageEvals:
        ids = list(image_ids)
        missing = [i for i in ids if i not in self.per_image]
        if missing:
            raise ConfigError(f"image ids {missing[:8]} were not evaluated; pick ids from .image_ids")
        return ImageEvals(self.params, {i: self.per_image[i] for i in ids})

    def ap(self, image_ids: Sequence[int] | None = None) -> float:
        """COCO keypoint AP (OKS 0.50:0.95, a fraction) over `image_ids` (default: every image; an id given
        twice counts twice); -1 where they hold no scored person (pycocotools' "absent")."""
        from pycocotools.cocoeval import COCOeval

        ids = self.image_ids if image_ids is None else list(image_ids)
        ev = COCOeval(iouType="keypoints")
        p = copy.copy(self.params)  # shallow: only imgIds is replaced (accumulate also resets catIds)
        p.imgIds = ids
        ev.params, ev._paramsEval = p, copy.copy(p)
        ev.evalImgs = [self.per_image[i] for i in ids]  # [category][area][image]: one category, one area
        with contextlib.redirect_stdout(io.StringIO()):  # accumulate prints its progress
            ev.accumulate()
        # summarize's stats[0]: every OKS threshold and recall point, area 'all', 20 detections per image
        m = list(p.maxDets).index(max(p.maxDets))
        s = ev.eval["precision"][:, :, 0, 0, m]  # (T, R)
        return float(np.mean(s[s > -1])) if (s > -1).any() else -1.0


def pool(parts: Sequence[ImageEvals]) -> ImageEvals:
    """One model's results over several evaluations of disjoint image sets (e.g. the evaluation halves of
    cross-validation folds), as if evaluated in one run: COCOeval's matching is per image."""
    if not parts:
        raise ConfigError("nothing to pool; pass the per-image results of at least one evaluation")
    first = parts[0].params
    merged: dict[int, dict | None] = {}
    for part in parts:
        for key in _SAME:
            if not np.array_equal(np.asarray(getattr(part.params, key)), np.asarray(getattr(first, key))):
                raise ConfigError(f"evaluations with different {key} cannot be pooled; evaluate them alike")
        twice = sorted(set(merged) & set(part.per_image))
        if twice:
            raise ConfigError(
                f"image ids {twice[:8]} are in two of the evaluations pooled; take each image from one "
                "(ImageEvals.subset)"
            )
        merged.update(part.per_image)
    return ImageEvals(first, merged)


def pool_folds(folds: Sequence[Mapping[str, ImageEvals]]) -> dict[str, ImageEvals]:
    """Each model's results pooled over cross-validation folds ({model name: results} per fold, the same
    names in each): every image once, from the first fold that evaluated it."""
    names = list(folds[0]) if folds else []
    if any(list(f) != names for f in folds):
        raise ConfigError(f"folds with different models ({[list(f) for f in folds]}); bench the same ones")
    taken: set[int] = set()
    shares = []  # per fold: the image ids it contributes
    for f in folds:
        ids = [i for i in next(iter(f.values())).image_ids if i not in taken]
        taken.update(ids)
        shares.append(ids)
    return {n: pool([f[n].subset(ids) for f, ids in zip(folds, shares, strict=True)]) for n in names}


@dataclass(frozen=True)
class DeltaAP:
    """AP - base AP over every image, and its paired-bootstrap interval (fractions, like AP)."""

    ap: float
    base_ap: float
    delta: float
    low: float
    high: float
    level: float
    resamples: int
    images: int


def bootstrap_delta_ap(
    base: ImageEvals,
    others: Sequence[ImageEvals],
    *,
    resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = BOOTSTRAP_SEED,
    level: float = BOOTSTRAP_LEVEL,
) -> list[DeltaAP]:
    """ΔAP of each of `others` against `base` (same images), with a paired bootstrap interval over images.

    Each resample draws len(images) images with replacement; base and every other model are scored on the
    same draw, and the interval is the central `level` share of the differences. It covers which images
    were evaluated, not other sources of variation (e.g. which images calibrated a quantized model)."""
    ids = base.image_ids
    for o in others:
        if o.image_ids != ids:
            raise ConfigError(
                f"a model was scored on {len(o.image_ids)} images and its base on {len(ids)} (or other ids); "
                "compare results of the same images"
            )
    if resamples < 1 or not 0 < level < 1:
        raise ConfigError(f"resamples {resamples}, level {level}: use resamples >= 1 and 0 < level < 1")
    draws = np.random.default_rng(seed).integers(0, len(ids), size=(resamples, len(ids)))  # (R, N)
    id_arr = np.asarray(ids)
    diffs = np.empty((len(others), resamples))  # (models, R)
    for r, row in enumerate(draws):
        sample = id_arr[row].tolist()
        b = base.ap(sample)
        for j, o in enumerate(others):
            diffs[j, r] = o.ap(sample) - b
    tail = 100 * (1 - level) / 2
    lows, highs = np.percentile(diffs, [tail, 100 - tail], axis=1) if others else ([], [])
    b_all = base.ap()
    out = []
    for o, lo, hi in zip(others, lows, highs, strict=True):
        a = o.ap()
        out.append(DeltaAP(a, b_all, a - b_all, float(lo), float(hi), level, resamples, len(ids)))
    return out
