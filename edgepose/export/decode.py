"""The decode as ONNX nodes: head convolutions' outputs -> NMS candidates, and the kept rows' keypoints.

Torch-free (onnx, numpy). Built with onnx.helper under DECODE_PREFIX (inside spec.TAIL_PREFIX, so
quantization keeps it float); `edgepose.export.deploy` explains why the end-to-end graph decodes the
convolutions' outputs instead of the raw head maps, and why these nodes are hand-built.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import onnx

from edgepose.export.tail import KptGather, TailBuilder
from edgepose.spec import TAIL_PREFIX, row_width

DECODE_PREFIX = TAIL_PREFIX + "decode/"


@dataclass(frozen=True)
class DecodeTables:
    """Per-candidate constants of the decode; N candidates ordered level, anchor, y, x as in nn.decode.

    Boxes: centre = sigmoid * 2s + (grid - 0.5) s and half size = 2 sigmoid^2 anchor, so `box_scale`
    (2, N) = 2s, `box_offset` (2, N) = (grid - 0.5) s, `box_half` (2, N) = 2 anchor (x row, y row).
    Keypoints: xy = raw * 2s + (grid - 0.5) s, conf = sigmoid(raw): `kpt_scale` (N, 1, 3) = (2s, 2s, 0),
    `kpt_offset` (N, 1, 3) = ((gx - 0.5) s, (gy - 0.5) s, 0).
    Gather: `level_offset[l]` (N, 1) = the flat position, within one image's conv output of level l, of
    the candidate's first channel (a * C * H*W + y * W + x), 0 for candidates of other levels (so every
    index stays in range); `level_mask[l]` (N, 1) marks level l's candidates.
    """

    box_scale: np.ndarray
    box_offset: np.ndarray
    box_half: np.ndarray
    kpt_scale: np.ndarray
    kpt_offset: np.ndarray
    level_offset: list[np.ndarray]
    level_mask: list[np.ndarray]
    level_size: list[int]  # A * C * H * W: one image's conv output of the level
    level_hw: list[tuple[int, int]]

    @classmethod
    def build(
        cls, anchors: np.ndarray, strides: Sequence[int], sizes: Sequence[tuple[int, int]], channels: int
    ) -> DecodeTables:
        """`anchors` (L, A, 2) px, `sizes` per level (H, W), `channels` = 6 + 3K per anchor."""
        scale, offset, half, lvl_off = [], [], [], []
        for anc, s, (h, w) in zip(np.asarray(anchors, np.float32), strides, sizes, strict=True):
            a = anc.shape[0]
            gy, gx = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")  # (H, W) each
            grid = np.tile(np.stack((gx.ravel(), gy.ravel()), 1), (a, 1))  # (A*H*W, 2)
            offset.append((grid - 0.5) * s)
            scale.append(np.full((a * h * w, 1), 2.0 * s))
            half.append(np.repeat(2.0 * anc, h * w, axis=0))  # (A*H*W, 2)
            # candidate (a, y, x) -> its channel-0 value in the level's (A, C, H*W) block
            cell = np.arange(h * w)
            lvl_off.append((np.arange(a)[:, None] * channels * h * w + cell[None, :]).ravel())  # (A*H*W,)
        scale_n, offset_n, half_n = (np.concatenate(v).astype(np.float32) for v in (scale, offset, half))
        n_total, starts = len(scale_n), np.cumsum([0] + [len(o) for o in lvl_off])
        level_offset, level_mask = [], []
        for i, off in enumerate(lvl_off):
            table = np.zeros((n_total, 1), np.int64)
            table[starts[i] : starts[i + 1], 0] = off
            mask = np.zeros((n_total, 1), bool)
            mask[starts[i] : starts[i + 1]] = True
            level_offset.append(table)
            level_mask.append(mask)
        zero = np.zeros_like(scale_n)
        return cls(
            box_scale=np.ascontiguousarray(np.repeat(scale_n, 2, axis=1).T),  # (2, N)
            box_offset=np.ascontiguousarray(offset_n.T),
            box_half=np.ascontiguousarray(half_n.T),
            kpt_scale=np.concatenate((scale_n, scale_n, zero), 1).reshape(-1, 1, 3),
            kpt_offset=np.concatenate((offset_n, zero), 1).reshape(-1, 1, 3),
            level_offset=level_offset,
            level_mask=level_mask,
            level_size=[
                int(anc.shape[0]) * channels * h * w for anc, (h, w) in zip(anchors, sizes, strict=True)
            ],
            level_hw=[(int(h), int(w)) for h, w in sizes],
        )


def _i64(*v: int) -> np.ndarray:
    return np.array(v, np.int64)


def _level_heads(
    b: TailBuilder,
    convs: Sequence[str],
    tables: DecodeTables,
    slice_args: tuple[str, str, str],
    num_anchors: int,
    channels: int,
) -> str:
    """Channels 0-5 (box, objectness, class) of every candidate, levels concatenated: (B, 6, N).

    `slice_args` names the (start 0, end 6, axis 2) constants of the per-level Slice.
    """
    a, c = num_anchors, channels
    c0, c6, ax2 = slice_args
    t_levels = []
    for i, (name, (h, w)) in enumerate(zip(convs, tables.level_hw, strict=True)):
        r = b.node(
            "Reshape", [name, b.const(f"l{i}_shape", _i64(0, a, c, h * w))], f"l{i}_rows"
        )  # (B, A, C, HW)
        # channels 0-5 of every anchor: A contiguous blocks of 6 x HW floats
        t = b.node(
            "Slice",
            [r, c0, c6, ax2],
            f"l{i}_head",
        )
        t = b.node("Transpose", [t], f"l{i}_head_t", perm=[0, 2, 1, 3])  # (B, 6, A, HW)
        t_levels.append(b.node("Reshape", [t, b.const(f"l{i}_shape6", _i64(0, 6, a * h * w))], f"l{i}_head6"))
    return b.node("Concat", t_levels, "head", axis=2) if len(t_levels) > 1 else t_levels[0]  # (B, 6, N)


def _boxes_and_scores(b: TailBuilder, head: str, tables: DecodeTables) -> tuple[str, str]:
    """(B, 6, N) head channels -> boxes (B, N, 4) x1y1x2y2 px and scores (B, N) = objectness x class."""
    sig = b.node("Sigmoid", [head], "head_sigmoid")  # (B, 6, N)
    xy = b.node("Gather", [sig, b.const("cols_xy", _i64(0, 1))], "t_xy", axis=1)  # (B, 2, N)
    wh = b.node("Gather", [sig, b.const("cols_wh", _i64(2, 3))], "t_wh", axis=1)  # (B, 2, N)
    centre = b.node(
        "Add",
        [
            b.node("Mul", [xy, b.const("box_scale", tables.box_scale)], "xy_scaled"),
            b.const("box_offset", tables.box_offset),
        ],
        "centre",
    )  # (B, 2, N) px
    half = b.node(
        "Mul", [b.node("Mul", [wh, wh], "wh_sq"), b.const("box_half", tables.box_half)], "half"
    )  # (B, 2, N) px
    corners = b.node(
        "Concat",
        [b.node("Sub", [centre, half], "top_left"), b.node("Add", [centre, half], "bottom_right")],
        "corners",
        axis=1,
    )  # (B, 4, N)
    boxes = b.node("Transpose", [corners], "boxes", perm=[0, 2, 1])  # (B, N, 4)
    obj = b.node("Gather", [sig, b.const("col_obj", np.array(4, np.int64))], "obj", axis=1)  # (B, N)
    cls = b.node("Gather", [sig, b.const("col_cls", np.array(5, np.int64))], "cls", axis=1)  # (B, N)
    return boxes, b.node("Mul", [obj, cls], "scores")  # (B, N)


def _keypoint_gather(
    flats: Sequence[str], tables: DecodeTables, *, num_keypoints: int, single_image: bool
) -> KptGather:
    """The KptGather that fetches the kept rows' keypoint channels from the flat conv outputs `flats`
    and decodes them; it runs inside the NMS tail, so its nodes carry the NMS prefix."""
    k = num_keypoints
    c = row_width(k)

    def gather(nb: TailBuilder, image: str, cand: str) -> str:
        """Kept rows (image (M,), candidate (M,)) -> decoded keypoints (M, 3K), all under the NMS prefix."""
        img_col = (
            None if single_image else nb.node("Unsqueeze", [image, nb.const("kpt_ax1", _i64(1))], "kpt_image")
        )
        out = None
        for i, (hw, flat) in enumerate(zip(tables.level_hw, flats, strict=True)):
            n_hw = hw[0] * hw[1]
            idx = nb.node(
                "Gather", [nb.const(f"kpt_l{i}_offset", tables.level_offset[i]), cand], f"kpt_l{i}_base"
            )  # (M, 1)
            if img_col is not None:
                step = nb.const(f"kpt_l{i}_size", np.array(tables.level_size[i], np.int64))
                idx = nb.node(
                    "Add",
                    [idx, nb.node("Mul", [img_col, step], f"kpt_l{i}_image_base")],
                    f"kpt_l{i}_row_base",
                )
            cols = nb.const(f"kpt_l{i}_cols", (np.arange(6, c, dtype=np.int64) * n_hw)[None, :])  # (1, 3K)
            idx = nb.node("Add", [idx, cols], f"kpt_l{i}_index")  # (M, 3K)
            g = nb.node("Gather", [flat, idx], f"kpt_l{i}_raw", axis=0)  # (M, 3K)
            if out is None:
                out = g
            else:
                mask = nb.node(
                    "Gather", [nb.const(f"kpt_l{i}_mask", tables.level_mask[i]), cand], f"kpt_l{i}_is"
                )
                out = nb.node("Where", [mask, g, out], f"kpt_l{i}_pick")  # (M, 3K)
        assert out is not None
        s = nb.node("Gather", [nb.const("kpt_scale", tables.kpt_scale), cand], "kpt_scale_rows")  # (M, 1, 3)
        o = nb.node("Gather", [nb.const("kpt_offset", tables.kpt_offset), cand], "kpt_offset_rows")
        raw3 = nb.node("Reshape", [out, nb.const("kpt_shape3", _i64(0, k, 3))], "kpt_raw3")  # (M, K, 3)
        xy = nb.node("Add", [nb.node("Mul", [raw3, s], "kpt_scaled"), o], "kpt_xy")  # (M, K, 3), conf col 0
        is_conf = nb.const("kpt_is_conf", np.array([False, False, True]))
        kpt = nb.node("Where", [is_conf, nb.node("Sigmoid", [raw3], "kpt_sigmoid"), xy], "kpt")  # (M, K, 3)
        return nb.node("Reshape", [kpt, nb.const("kpt_shape", _i64(0, 3 * k))], "kpts")  # (M, 3K)

    return gather


def append_decode(
    graph: onnx.GraphProto,
    convs: Sequence[str],
    tables: DecodeTables,
    *,
    num_anchors: int,
    num_keypoints: int,
    single_image: bool,
) -> tuple[str, str, KptGather]:
    """Decode nodes on the head convs' outputs `convs` (B, A*C, H, W): boxes (B, N, 4) x1y1x2y2 px and
    scores (B, N) for NMS, and the KptGather that fetches + decodes the kept rows' keypoints (M, 3K).

    `single_image`: the batch is statically 1, so the image index of a kept row is always 0 (saves the
    per-level batch offset nodes).
    """
    b = TailBuilder(graph, DECODE_PREFIX)
    c0, c6, ax2, flat_shape = (
        b.const(n, _i64(v)) for n, v in (("c0", 0), ("c6", 6), ("ax2", 2), ("flat", -1))
    )
    head = _level_heads(b, convs, tables, (c0, c6, ax2), num_anchors, row_width(num_keypoints))
    boxes, scores = _boxes_and_scores(b, head, tables)
    flats = [b.node("Reshape", [name, flat_shape], f"l{i}_flat") for i, name in enumerate(convs)]
    gather = _keypoint_gather(flats, tables, num_keypoints=num_keypoints, single_image=single_image)
    return boxes, scores, gather
