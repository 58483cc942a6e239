"""Layer-wise weight rounding fitted on calibration activations (AdaRound's goal, solved in closed form).

Round-to-nearest minimises each weight's own error, not the layer's output error. AdaRound (Nagel et
al., "Up or Down? Adaptive Rounding for Post-Training Quantization", 2020) chooses up or down per
weight to minimise the layer's output error on calibration inputs, || W X - W_q X ||^2, a quadratic in
the weights with Hessian H = X X^T. We solve the same objective with the optimal-brain-quantization
recursion (OBQ/GPTQ: Frantar et al. 2022): quantize one input column at a time and spread its
rounding error over the columns not yet quantized, weighted by the inverse Hessian. That needs one
Cholesky factor per layer instead of thousands of gradient steps, so it runs in numpy in seconds
and the base install (no torch) can do it.

The result stays on onnxruntime's grid: per output channel the scale is max|w| / 127 (symmetric
int8), and the element that sets it (the channel's largest |w|) is kept at +-127 while the others
move, so onnxruntime.quantization recomputes exactly the same scale and the same integers when it
writes the QDQ graph. Only Conv layers (any group count) are fitted; others keep nearest rounding.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import onnx
from onnx import helper, numpy_helper

from edgepose.onnxkit.graph import with_outputs
from edgepose.quant.graph import Layer
from edgepose.runtime.session import cpu_session
from edgepose.spec import INPUT_NAME

QMAX = 127  # symmetric int8 weights: [-127, 127] (onnxruntime.quantization's per-channel int8 grid)
DAMP = 0.01  # Hessian damping, fraction of its mean diagonal (GPTQ's default)
SAMPLES_PER_IMAGE = 512  # output positions sampled per image and layer
BLOCK = 128  # columns quantized between two wide updates


@dataclass(frozen=True)
class ConvGeometry:
    kernel: tuple[int, int]
    strides: tuple[int, int]
    pads: tuple[int, int, int, int]  # top, left, bottom, right
    dilations: tuple[int, int]
    group: int


def conv_geometry(node: onnx.NodeProto, weight_shape: Sequence[int]) -> ConvGeometry | None:
    """A 2-D Conv's geometry (None for other ops, auto_pad other than NOTSET, or non-2-D kernels)."""
    if node.op_type != "Conv" or len(weight_shape) != 4:
        return None
    a = {x.name: helper.get_attribute_value(x) for x in node.attribute}
    if a.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET"):
        return None
    kh, kw = int(weight_shape[2]), int(weight_shape[3])
    s = tuple(int(v) for v in a.get("strides", (1, 1)))
    d = tuple(int(v) for v in a.get("dilations", (1, 1)))
    p = tuple(int(v) for v in a.get("pads", (0, 0, 0, 0)))
    return ConvGeometry(
        (kh, kw), (s[0], s[1]), (p[0], p[1], p[2], p[3]), (d[0], d[1]), int(a.get("group", 1))
    )


def sample_patches(x: np.ndarray, geo: ConvGeometry, num: int, rng: np.random.Generator) -> np.ndarray:
    """`num` random im2col rows of one image x (1, C, H, W): (P, C, kh, kw) in the weight's order."""
    h, w = x.shape[2:]
    (kh, kw), (sh, sw), (pt, pl, pb, pr), (dh, dw) = geo.kernel, geo.strides, geo.pads, geo.dilations
    oh = (h + pt + pb - dh * (kh - 1) - 1) // sh + 1
    ow = (w + pl + pr - dw * (kw - 1) - 1) // sw + 1
    xp = np.pad(x[0], ((0, 0), (pt, pb), (pl, pr)))  # (C, H + pt + pb, W + pl + pr)
    n = min(num, oh * ow)
    flat = rng.choice(oh * ow, size=n, replace=False)
    oy, ox = flat // ow, flat % ow
    iy = oy[:, None] * sh + np.arange(kh)[None, :] * dh  # (P, kh)
    ix = ox[:, None] * sw + np.arange(kw)[None, :] * dw  # (P, kw)
    patches = xp[:, iy[:, :, None], ix[:, None, :]]  # (C, P, kh, kw)
    return patches.transpose(1, 0, 2, 3)  # (P, C, kh, kw)


def round_rows(w: np.ndarray, h: np.ndarray, damp: float = DAMP) -> np.ndarray:
    """Integers q (rows of w on their own symmetric int8 grid) minimising sum_rows (w - s q) H (w - s q)^T.

    w: (R, D) weights, h: (D, D) input second moment. Each row keeps its largest |w| at +-127.
    """
    w = w.astype(np.float64)
    r, d = w.shape
    scale = np.max(np.abs(w), axis=1) / QMAX  # (R,)
    scale = np.where(scale > 0, scale, 1.0)
    anchor = np.argmax(np.abs(w), axis=1)  # (R,) the element that sets the scale
    h = h.astype(np.float64).copy()
    dead = np.diag(h) <= 0
    h[dead, dead] = 1.0  # an input that is always 0: its weight does not matter, keep nearest
    h += np.eye(d) * damp * float(np.mean(np.diag(h)))
    try:
        u = np.linalg.cholesky(np.linalg.inv(h)).T  # upper: inv(H) = U^T U
    except np.linalg.LinAlgError:
        return np.clip(np.rint(w / scale[:, None]), -QMAX, QMAX)
    work = w / scale[:, None]  # (R, D) in grid units
    q = np.zeros_like(work)
    rows = np.arange(r)
    for b0 in range(0, d, BLOCK):  # GPTQ's lazy batch: exact, but the wide update is one matmul per block
        b1 = min(d, b0 + BLOCK)
        errs = np.zeros((r, b1 - b0))
        for j in range(b0, b1):
            col = work[:, j]
            qj = np.clip(np.rint(col), -QMAX, QMAX)
            fixed = anchor == j
            qj[fixed] = np.sign(w[rows[fixed], j]) * QMAX
            q[:, j] = qj
            err = (col - qj) / u[j, j]  # (R,)
            work[:, j + 1 : b1] -= np.outer(err, u[j, j + 1 : b1])
            errs[:, j - b0] = err
        work[:, b1:] -= errs @ u[b0:b1, b1:]
    return q


@dataclass
class RoundingReport:
    """Per fitted layer: output MSE on the calibration patches, nearest rounding vs fitted (relative)."""

    layers: dict[str, tuple[float, float]] = field(default_factory=dict)

    @property
    def gain(self) -> float:
        """Mean over layers of 1 - fitted / nearest output error (0.3 = 30% less weight error)."""
        g = [1 - f / n for n, f in self.layers.values() if n > 0]
        return float(np.mean(g)) if g else 0.0


def _output_error(w: np.ndarray, wq: np.ndarray, h: np.ndarray) -> float:
    e = (w - wq).astype(np.float64)
    return float(np.einsum("rd,de,re->", e, h, e))


def input_moments(
    body: onnx.ModelProto,
    layers: Sequence[Layer],
    images: Sequence[np.ndarray],
    threads: int | None = None,
    samples: int = SAMPLES_PER_IMAGE,
    seed: int = 0,
) -> dict[str, list[np.ndarray]]:
    """Per fittable Conv layer, per group, the second moment of its input patches on `images`."""
    inits = {t.name: t for t in body.graph.initializer}
    nodes = {n.name: n for n in body.graph.node}
    geos: dict[str, ConvGeometry] = {}
    for la in layers:
        node = nodes.get(la.name)
        if node is None or la.weight not in inits:
            continue
        geo = conv_geometry(node, list(inits[la.weight].dims))
        if geo is not None:
            geos[la.name] = geo
    fit = [la for la in layers if la.name in geos]
    want = sorted({nodes[la.name].input[0] for la in fit})
    fetch = [t for t in want if t != INPUT_NAME]
    sess = cpu_session(with_outputs(body, fetch).SerializeToString(), threads)
    rng = np.random.default_rng(seed)
    moments: dict[str, list[np.ndarray]] = {}
    for x in images:
        values = dict(zip(fetch, sess.run(fetch, {INPUT_NAME: x}), strict=True)) if fetch else {}
        values[INPUT_NAME] = x
        for la in fit:
            geo = geos[la.name]
            p = sample_patches(values[nodes[la.name].input[0]].astype(np.float32), geo, samples, rng)
            per = p.shape[1] // geo.group
            acc = moments.setdefault(la.name, [np.zeros(0)] * geo.group)
            for g in range(geo.group):
                xg = p[:, g * per : (g + 1) * per].reshape(p.shape[0], -1)  # (P, D) float32: BLAS speed
                m2 = (xg.T @ xg).astype(np.float64)
                acc[g] = m2 if not acc[g].size else acc[g] + m2
    return moments


def fit_rounding(
    model: onnx.ModelProto, layers: Sequence[Layer], moments: dict[str, list[np.ndarray]]
) -> tuple[onnx.ModelProto, RoundingReport]:
    """A copy of `model` whose fitted layers' weights lie on their int8 grid (fitted rounding)."""
    m = onnx.ModelProto()
    m.CopyFrom(model)
    inits = {t.name: t for t in m.graph.initializer}
    report = RoundingReport()
    for la in layers:
        if la.name not in moments or la.weight not in inits:
            continue
        w = numpy_helper.to_array(inits[la.weight]).astype(np.float64)  # (Cout, Cin/g, kh, kw)
        groups = moments[la.name]
        cout = w.shape[0]
        per = cout // len(groups)
        flat = w.reshape(cout, -1)  # (Cout, D)
        scale = np.max(np.abs(flat), axis=1) / QMAX
        out = np.empty_like(flat)
        err_near = err_fit = 0.0
        for g, h in enumerate(groups):
            rows = slice(g * per, (g + 1) * per)
            q = round_rows(flat[rows], h)
            s = scale[rows, None]
            out[rows] = q * s
            err_near += _output_error(
                flat[rows], np.clip(np.rint(flat[rows] / np.where(s > 0, s, 1)), -QMAX, QMAX) * s, h
            )
            err_fit += _output_error(flat[rows], out[rows], h)
        if err_fit > err_near:  # never worse than nearest rounding on the data it was fitted on
            continue
        inits[la.weight].CopyFrom(numpy_helper.from_array(out.reshape(w.shape).astype(np.float32), la.weight))
        report.layers[la.name] = (err_near, err_fit)
    return m, report
