"""Synthetic scenery: textured, cluttered backgrounds, distractors that are not people, foreground
occluders, and the per-image camera finish (colour, lighting, blur, noise).

Speed matters (hundreds of images per second on one core): textures are made at low resolution and
resized up, noise comes from a fixed bank cropped at a random offset, and the colour, contrast and
gamma changes are one lookup table.
"""

from __future__ import annotations

import bisect
import functools

import cv2
import numpy as np

from edgepose.data.synth_body import OCCLUDER_CODE

_BANK = 384


@functools.cache
def _noise_bank() -> np.ndarray:
    """(BANK, BANK, 3) uint8 Gaussian noise around 128 (sd 32), fixed so outputs stay deterministic."""
    n = np.random.default_rng(20240).normal(128, 32, (_BANK, _BANK, 3))
    return np.clip(n, 0, 255).astype(np.uint8)


def _noise(rng: np.random.Generator, size: int) -> np.ndarray:
    """(size, size, 3) uint8 noise: a random crop (tiled if larger) of the bank."""
    bank = _noise_bank()
    if size > _BANK:
        reps = -(-size // _BANK) + 1
        bank = np.tile(bank, (reps, reps, 1))
    y, x = rng.integers(0, bank.shape[0] - size + 1, 2)
    return bank[y : y + size, x : x + size]


def _colour(rng: np.random.Generator, lo: int = 0, hi: int = 256) -> tuple[int, int, int]:
    return tuple(rng.integers(lo, hi, 3).tolist())


def _smooth(rng: np.random.Generator, size: int, cells: int, ch: int = 3) -> np.ndarray:
    """Smooth random field in [0, 1]: (size, size, ch) float32 from a (cells, cells) grid."""
    small = rng.random((cells, cells, ch), dtype=np.float32)
    out = cv2.resize(small, (size, size), interpolation=cv2.INTER_CUBIC)
    return out if ch > 1 else out[..., None]


def _full(a: np.ndarray, lo: int) -> np.ndarray:
    """`a` — a (3,) colour, an (lo, lo, 1) plane or an (lo, 1, 3) column of colours — as a contiguous
    (lo, lo, 3) array.

    numpy runs an elementwise op on (lo, lo, 3) with such an operand ~20x slower than on full arrays
    (its inner loop is 3 long), so the operands are widened first. The widening is a copy (exact);
    the arithmetic stays numpy's float32 ops, elementwise as before, so the values are unchanged.
    """
    if a.shape == (3,):
        return cv2.repeat(a.reshape(1, 1, 3), lo, lo)
    if a.shape == (lo, lo, 1):
        plane = np.ascontiguousarray(a[..., 0])
        return cv2.merge([plane, plane, plane])
    return cv2.repeat(a, 1, lo)  # (lo, 1, 3)


def background(rng: np.random.Generator, size: int) -> np.ndarray:
    """A textured background: gradient + blobs, a room (wall and floor), a tiled pattern, or outdoors.

    The smooth layers are computed at a quarter of the resolution (their detail is low anyway, and
    the grain they get there becomes a mid-frequency texture) and resized up once.
    """
    lo = max(16, size // 4)
    kind = bisect.bisect([0.3, 0.6, 0.8], rng.random())
    c1, c2 = rng.uniform(0, 255, 3).astype(np.float32), rng.uniform(0, 255, 3).astype(np.float32)
    grain = rng.normal(0, rng.uniform(2, 14), (lo, lo, 1)).astype(np.float32)
    if kind == 0:  # gradient with colour blobs
        t = _full(_smooth(rng, lo, 2, 1), lo)
        blend = _full(c1, lo) * t + _full(c2, lo) * (1 - t)
        img = blend + (_smooth(rng, lo, int(rng.integers(3, 9))) - 0.5) * rng.uniform(30, 120)
    elif kind == 1:  # room: wall over a floor
        h = rng.uniform(0.3, 0.75)
        rows = (np.arange(lo, dtype=np.float32) / lo < h)[:, None, None]
        img = _full(np.where(rows, c1, c2), lo) + (_smooth(rng, lo, 4) - 0.5) * 40
    elif kind == 2:  # base for a tiled pattern
        img = _smooth(rng, lo, 3) * 255
    else:  # outdoors: sky gradient, textured ground
        h = rng.uniform(0.2, 0.6)
        sky = np.array([rng.uniform(180, 255), rng.uniform(140, 220), rng.uniform(90, 200)], np.float32)
        t = (np.arange(lo, dtype=np.float32) / lo)[:, None, None]
        ground = _full(rng.uniform(30, 170, 3).astype(np.float32), lo) + (
            (_smooth(rng, lo, int(rng.integers(6, 16))) - 0.5) * 70
        )
        img = np.where(t < h, _full(sky * (0.75 + 0.25 * t), lo), ground)
    small = np.clip(img + _full(grain, lo), 0, 255).astype(np.uint8)
    out = cv2.resize(small, (size, size), interpolation=cv2.INTER_LINEAR)
    if kind == 1:  # floor tiles or planks, drawn sharp at full resolution
        y0 = int(h * size)
        step = int(rng.integers(max(4, size // 20), max(5, size // 5)))
        line = tuple(float(v) for v in (c2 * rng.uniform(0.5, 0.8)))
        for y in range(y0, size, max(2, step // 2)):
            cv2.line(out, (0, y), (size, y), line, 1)
        if rng.random() < 0.6:
            for x in range(-size, 2 * size, step):
                cv2.line(out, (size // 2 + (x - size // 2) // 3, y0), (x, size), line, 1)
    elif kind == 2:  # tiled pattern: stripes, checks or dots, blended over the smooth base
        cell = int(rng.integers(4, 24))
        tile = np.empty((2 * cell, 2 * cell, 3), np.uint8)
        tile[:] = c1.astype(np.uint8)
        pat = rng.integers(3)
        if pat == 0:
            tile[:cell] = c2.astype(np.uint8)
        elif pat == 1:
            tile[:cell, :cell] = c2.astype(np.uint8)
            tile[cell:, cell:] = c2.astype(np.uint8)
        else:
            cv2.circle(tile, (cell, cell), max(1, cell // 2), tuple(float(v) for v in c2), -1)
        reps = size // (2 * cell) + 2
        pattern = np.ascontiguousarray(np.tile(tile, (reps, reps, 1))[:size, :size])
        if rng.random() < 0.5:
            m = cv2.getRotationMatrix2D((size / 2, size / 2), float(rng.uniform(-45, 45)), 1.5)
            pattern = cv2.warpAffine(pattern, m, (size, size), borderMode=cv2.BORDER_REFLECT)
        a = float(rng.uniform(0.4, 0.8))
        out = cv2.addWeighted(pattern, a, out, 1 - a, 0)
    return out


def _limb_chain(rng: np.random.Generator, img: np.ndarray, size: int, colour: tuple, owner=None) -> None:
    """A bent chain of 1-3 capsules: limb-like, but not a person."""
    px, py = rng.uniform(0, size, 2).tolist()
    th = max(1, int(size * rng.uniform(0.01, 0.06)))
    ang = rng.uniform(0, 2 * np.pi)
    for _ in range(int(rng.integers(1, 4))):
        ln = size * rng.uniform(0.05, 0.25)
        # p + ln (cos, sin) on floats; np.cos/np.sin stay (numpy's SIMD trig may round unlike libm's)
        qx, qy = px + ln * float(np.cos(ang)), py + ln * float(np.sin(ang))
        a, b = (int(px), int(py)), (int(qx), int(qy))
        cv2.line(img, a, b, colour, th, cv2.LINE_AA)
        if owner is not None:
            cv2.line(owner, a, b, OCCLUDER_CODE, th, cv2.LINE_8)
        px, py, ang = qx, qy, ang + rng.uniform(-1.6, 1.6)


def _shape(rng: np.random.Generator, img: np.ndarray, size: int, colour: tuple, owner=None) -> None:
    """One random rectangle, ellipse, polygon or line (drawn into `owner` too when it is an occluder)."""
    targets = [(img, colour, cv2.LINE_AA)] + (
        [(owner, OCCLUDER_CODE, cv2.LINE_8)] if owner is not None else []
    )
    k = rng.integers(5)
    c = rng.uniform(-0.1, 1.1, 2) * size
    r = rng.uniform(0.03, 0.3, 2) * size
    filled = -1 if rng.random() < 0.75 else max(1, int(size * 0.01))
    if k == 0:
        p1, p2 = (c - r).astype(int), (c + r).astype(int)
        for t, col, lt in targets:
            cv2.rectangle(t, tuple(map(int, p1)), tuple(map(int, p2)), col, filled, lt)
    elif k == 1:
        ang = float(rng.uniform(0, 180))
        for t, col, lt in targets:
            cv2.ellipse(t, tuple(map(int, c)), tuple(map(int, r)), ang, 0, 360, col, filled, lt)
    elif k == 2:
        n = int(rng.integers(3, 7))
        ang = np.sort(rng.uniform(0, 2 * np.pi, n))
        pts = (c + np.stack([np.cos(ang), np.sin(ang)], 1) * r * rng.uniform(0.5, 1, (n, 1))).astype(np.int32)
        for t, col, lt in targets:
            cv2.fillPoly(t, [pts], col, lt)
    elif k == 3:  # thin straight lines: edges and poles
        q = rng.uniform(-0.1, 1.1, 2) * size
        th = max(1, int(size * rng.uniform(0.003, 0.04)))
        for t, col, lt in targets:
            cv2.line(t, tuple(map(int, c)), tuple(map(int, q)), col, th, lt)
    else:
        _limb_chain(rng, img, size, colour, owner)


def clutter(rng: np.random.Generator, img: np.ndarray) -> None:
    """Background distractors: shapes, lines and limb-like capsules that are not people."""
    size = img.shape[0]
    for _ in range(int(rng.integers(3, 16))):
        if rng.random() < 0.3:
            _limb_chain(rng, img, size, _colour(rng))
        else:
            _shape(rng, img, size, _colour(rng))


def occluders(rng: np.random.Generator, img: np.ndarray, owner: np.ndarray) -> None:
    """Foreground objects drawn over the people (owner code OCCLUDER_CODE)."""
    size = img.shape[0]
    if rng.random() < 0.35:
        for _ in range(int(rng.integers(1, 4))):
            _shape(rng, img, size, _colour(rng), owner)


_LEVELS = np.arange(256, dtype=np.float32)[:, None] / 255.0  # (256, 1) grey levels in [0, 1]


def finish(rng: np.random.Generator, img: np.ndarray) -> np.ndarray:
    """Camera finish: colour cast, brightness/contrast/gamma (one LUT), uneven light, blur, noise."""
    size = img.shape[0]
    gain = rng.uniform(0.85, 1.15, 3) * rng.uniform(0.7, 1.2)
    contrast, bias, gamma = rng.uniform(0.7, 1.25), rng.uniform(-25, 25), np.exp(rng.normal(0, 0.2))
    lut = ((_LEVELS**gamma) * 255 - 128) * contrast + 128 + bias  # (256, 1)
    lut = np.clip(lut * gain[None, :], 0, 255).astype(np.uint8)[:, None, :]  # (256, 1, 3)
    img = cv2.LUT(img, lut)
    if rng.random() < 0.4:  # uneven lighting
        small = ((0.65 + 0.6 * rng.random((3, 3), dtype=np.float32)) * 128).astype(np.uint8)
        light = cv2.resize(np.repeat(small[:, :, None], 3, 2), (size, size), interpolation=cv2.INTER_CUBIC)
        img = cv2.multiply(img, light, scale=1 / 128)
    r = rng.random()
    if r < 0.3:
        img = cv2.GaussianBlur(img, (0, 0), float(rng.uniform(0.5, 1.5)))
    elif r < 0.4:  # motion blur
        n = int(rng.integers(3, 10))
        k = np.zeros((n, n), np.float32)
        k[n // 2] = 1.0 / n
        k = cv2.warpAffine(
            k, cv2.getRotationMatrix2D((n / 2 - 0.5, n / 2 - 0.5), float(rng.uniform(0, 180)), 1), (n, n)
        )
        img = cv2.filter2D(img, -1, k / max(k.sum(), 1e-6))
    if rng.random() < 0.7:
        sigma = float(rng.uniform(0.05, 0.35))  # x 32 in the bank: 1.6 .. 11 grey levels
        img = cv2.addWeighted(img, 1.0, _noise(rng, size), sigma, -128.0 * sigma)  # img + sigma (noise - 128)
    return img
