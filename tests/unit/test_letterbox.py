"""letterbox + LetterboxInfo: shape, padding colour, and the mapping both ways."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from edgepose.runtime import letterbox

side = st.integers(1, 2000)
target = st.integers(16, 640)


@settings(max_examples=60, deadline=None)
@given(h0=side, w0=side, th=target, tw=target, color=st.integers(0, 255), seed=st.integers(0, 2**16))
def test_shape_padding_and_round_trip(h0: int, w0: int, th: int, tw: int, color: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    image = np.full((h0, w0, 3), 255 - color, np.uint8)  # never the padding colour
    out, info = letterbox(image, (th, tw), color)
    assert out.shape == (th, tw, 3) and out.dtype == np.uint8
    # The content rectangle is exactly where the original's corners map to.
    x0, y0 = info.to_network(np.array([0.0, 0.0]))
    x1, y1 = info.to_network(np.array([w0, h0], np.float64))
    ix0, iy0, ix1, iy1 = (round(float(v)) for v in (x0, y0, x1, y1))
    assert abs(x0 - ix0) < 1e-3 and abs(y1 - iy1) < 1e-3
    assert ix0 >= 0 and ix1 <= tw and iy0 >= 0 and iy1 <= th
    assert (ix1 - ix0 == tw) or (iy1 - iy0 == th)  # one side fills the target
    content = np.zeros((th, tw), bool)
    content[iy0:iy1, ix0:ix1] = True
    assert (out[~content] == color).all()  # padding colour exact
    assert (out[content] == 255 - color).all()  # a flat image stays flat
    # Random points go to the network and back within 1 px.
    pts = rng.uniform([0, 0], [w0, h0], size=(50, 2)).astype(np.float32)  # (P, xy)
    back = info.to_original(info.to_network(pts))
    np.testing.assert_allclose(back, pts, atol=1.0)
    assert info.orig_size == (h0, w0)


@settings(max_examples=40, deadline=None)
@given(h0=st.integers(1, 255), w0=st.integers(1, 255), th=target, tw=target)
def test_pixels_land_where_the_mapping_says(h0: int, w0: int, th: int, tw: int) -> None:
    """Ramp image (B = x, G = y): the pixel at a network position holds the original coordinate there."""
    xs, ys = np.meshgrid(np.arange(w0), np.arange(h0))
    image = np.stack([xs, ys, np.zeros_like(xs)], axis=-1).astype(np.uint8)  # (H, W, 3)
    out, info = letterbox(image, (th, tw), 0)
    x0, y0 = info.to_network(np.array([0.0, 0.0]))
    x1, y1 = info.to_network(np.array([float(w0), float(h0)]))
    us = np.arange(round(float(x0)), round(float(x1)))
    vs = np.arange(round(float(y0)), round(float(y1)))
    uu, vv = np.meshgrid(us, vs)
    centres = np.stack([uu + 0.5, vv + 0.5], axis=-1).astype(np.float32)  # (h, w, xy)
    orig = info.to_original(centres) - 0.5  # pixel index coordinates in the original
    orig = np.clip(orig, 0, [w0 - 1, h0 - 1])
    got = out[vv, uu][..., :2].astype(np.float32)  # (h, w, [x, y]) read from the ramp
    np.testing.assert_allclose(got, orig, atol=1.0)


def test_grayscale_keeps_a_channel_axis_and_exact_numbers() -> None:
    out, info = letterbox(np.zeros((100, 200), np.uint8), (64, 64), 114)
    assert out.shape == (64, 64, 1)
    assert (info.scale_x, info.scale_y, info.pad_x, info.pad_y) == (0.32, 0.32, 0.0, 16.0)
    assert (out[:16] == 114).all() and (out[48:] == 114).all() and (out[16:48] == 0).all()
    np.testing.assert_allclose(
        info.to_original(np.array([[10.0, 20.0], [70.0, 60.0]])), [[31.25, 12.5], [200, 100]]
    )
