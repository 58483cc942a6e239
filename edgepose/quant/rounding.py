"""Layer-wise weight rounding fitted on calibration activations (AdaRound's goal, solved in closed form).

Round-to-nearest minimises each weight's own error, not the layer's output error. AdaRound (Nagel et
al., "Up or Down? Adaptive Rounding for Post-Training Quantization", 2020) chooses up or down per
weight to minimise the layer's output error on calibration inputs, a quadratic in the weights. We solve
it with the optimal-brain-quantization recursion (OBQ/GPTQ: Frantar et al. 2022): quantize one input
column at a time and spread its rounding error over the columns not yet quantized, weighted by the
inverse Hessian. That needs one Cholesky factor per layer instead of thousands of gradient steps, so it
runs in numpy in seconds and the base install (no torch) can do it.

What is fitted: in the int8 model a layer reads its input rounded to 8 bits (x_q), so the output error
that counts is || W x_t - W_q x_q ||^2, with x_t the same input computed in float from the quantized
layers upstream (the float twin, edgepose.quant.twin: the error of L's own input tensors, none
propagated from upstream, which those layers answer for). Expanding it, the best real-valued weights are
W C^T H^-1 (H = sum x_q x_q^T, C = sum x_q x_t^T): W corrected for what the 8-bit input loses
(clipped tails, the coarse levels of a SiLU's negative part). Asymmetric calibration of this kind is
GPTAQ's (Li et al. 2025) for transformers; here it is local (the twin's input, not the float model's,
which would have every layer also undo upstream error and over-correct: measured, fidelity drop 0.05 ->
0.6 on YOLO11n-pose). That correction is estimated from a few thousand patches, so it is a ridge
regression toward W (RIDGE below), and the GPTQ recursion then rounds toward it with Hessian H.

The result stays on onnxruntime's grid: per output channel the scale is max|w| / 127 (symmetric
int8) of the original weights, and the element that sets it (the channel's largest |w|) is kept at
+-127 while the others move, so onnxruntime.quantization recomputes exactly the same scale and the same
integers when it writes the QDQ graph. Only Conv layers (any group count) are fitted; others keep
nearest rounding.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import onnx
from onnx import helper, numpy_helper

from edgepose.onnxkit.graph import with_outputs
from edgepose.quant.graph import Layer
from edgepose.quant.twin import layer_inputs, twin_model
from edgepose.runtime.session import cpu_session
from edgepose.spec import INPUT_NAME

QMAX = 127  # symmetric int8 weights: [-127, 127] (onnxruntime.quantization's per-channel int8 grid)
DAMP = 0.01  # Hessian damping, fraction of its mean diagonal (GPTQ's default)
SAMPLES_PER_IMAGE = 512  # output positions sampled per image and layer
BLOCK = 128  # columns quantized between two wide updates
# Ridge weight of the 8-bit-input correction, as a fraction of H's mean diagonal. YOLO11n-pose, fidelity
# to float on each fold's 66 evaluation photos, one run each (0.1 measured worse on the check images and
# was dropped): 0.3: 0.963 / 0.966, 1: 0.974 / 0.977, 3: 0.973 / 0.974. Runs with other patch samples
# move these by up to 0.006, so 1 is a choice among near-equals, not a sharp optimum.
RIDGE = 1.0


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


def round_rows(
    w: np.ndarray, h: np.ndarray, damp: float = DAMP, target: np.ndarray | None = None
) -> np.ndarray:
    """Integers q (rows of w on their own symmetric int8 grid) minimising sum_rows (t - s q) H (t - s q)^T.

    w: (R, D) weights, which set the grid (s = max|w| / 127 per row; each row keeps its largest |w| at
    +-127); t: the real-valued weights to approach, w unless `target` is given; h: (D, D) input second
    moment.
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
    work = (w if target is None else target.astype(np.float64)) / scale[:, None]  # (R, D) in grid units
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
class GroupStats:
    """Sums over the sampled input patches of one conv group (x_q: its 8-bit input, x_t: the twin's)."""

    h: np.ndarray  # sum x_q x_q^T (D, D)
    cross: np.ndarray  # sum x_q x_t^T (D, D)
    energy: float = 0.0  # sum ||W x_t||^2 for the weights it was gathered for (makes `error` absolute)

    def target(self, w: np.ndarray, ridge: float = RIDGE) -> np.ndarray:
        """The real-valued weights that best map x_q to W x_t: W + ridge-regularised correction, (R, D)."""
        scale = float(np.mean(np.diag(self.h)))
        if scale <= 0:  # an input that is always 0: nothing to fit
            return w
        lam = ridge * scale
        fix = np.linalg.solve(self.h + lam * np.eye(len(self.h)), (self.cross - self.h) @ w.T)
        return w + fix.T

    def error(self, w: np.ndarray, wq: np.ndarray) -> float:
        """sum || W x_t - W_q x_q ||^2 over the patches (w: the weights `energy` was gathered for)."""
        quad = np.einsum("rd,de,re->", wq, self.h, wq)
        mixed = np.einsum("rd,de,re->", wq, self.cross, w)
        return float(quad - 2.0 * mixed + self.energy)


@dataclass
class RoundingReport:
    """Per fitted layer: output error against the float layer on the calibration patches, nearest rounding
    vs fitted."""

    layers: dict[str, tuple[float, float]] = field(default_factory=dict)

    @property
    def gain(self) -> float:
        """Mean over layers of 1 - fitted / nearest output error (0.3 = 30% less)."""
        g = [1 - f / n for n, f in self.layers.values() if n > 0]
        return float(np.mean(g)) if g else 0.0


def input_moments(
    qdq: onnx.ModelProto,
    body: onnx.ModelProto,
    layers: Sequence[Layer],
    images: Sequence[np.ndarray],
    threads: int | None = None,
    samples: int = SAMPLES_PER_IMAGE,
    seed: int = 0,
) -> dict[str, list[GroupStats]]:
    """Per fittable Conv layer, per group, the statistics of its input patches on `images`: the 8-bit input
    of `qdq` (the all-8-bit model of `body`, whose weights are the ones to fit) against the float twin's."""
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
    convs = [la for la in layers if la.name in geos]
    twin, _ = twin_model(qdq, body, convs)
    pairs = layer_inputs(twin, convs)
    fit = [la for la in layers if la.name in pairs]
    fetch = sorted({t for la in fit for t in pairs[la.name]} - {INPUT_NAME})
    sess = cpu_session(with_outputs(twin, fetch).SerializeToString(), threads)
    weights = {la.name: numpy_helper.to_array(inits[la.weight]).astype(np.float32) for la in fit}
    rng = np.random.default_rng(seed)
    stats: dict[str, list[GroupStats]] = {}
    for x in images:
        values = dict(zip(fetch, sess.run(fetch, {INPUT_NAME: x}), strict=True)) if fetch else {}
        values[INPUT_NAME] = x
        for la in fit:
            geo = geos[la.name]
            q_name, t_name = pairs[la.name]
            c = values[q_name].shape[1]
            both = np.concatenate([values[q_name], values[t_name]], axis=1).astype(np.float32)
            p = sample_patches(both, geo, samples, rng)  # (P, 2C, kh, kw): the same positions for both
            per = c // geo.group
            cout = weights[la.name].shape[0]
            wflat = weights[la.name].reshape(cout, -1)
            acc = stats.setdefault(la.name, [])
            for g in range(geo.group):
                xq = p[:, g * per : (g + 1) * per].reshape(p.shape[0], -1)  # (P, D) float32: BLAS speed
                xt = p[:, c + g * per : c + (g + 1) * per].reshape(p.shape[0], -1)
                wg = wflat[g * (cout // geo.group) : (g + 1) * (cout // geo.group)]
                h, cross = (xq.T @ xq).astype(np.float64), (xq.T @ xt).astype(np.float64)
                energy = float(np.sum((xt @ wg.T).astype(np.float64) ** 2))
                if len(acc) <= g:
                    acc.append(GroupStats(h, cross, energy))
                else:
                    acc[g].h += h
                    acc[g].cross += cross
                    acc[g].energy += energy
    return stats


def fit_rounding(
    model: onnx.ModelProto, layers: Sequence[Layer], stats: dict[str, list[GroupStats]]
) -> tuple[onnx.ModelProto, RoundingReport]:
    """A copy of `model` whose fitted layers' weights lie on their int8 grid (fitted rounding)."""
    m = onnx.ModelProto()
    m.CopyFrom(model)
    inits = {t.name: t for t in m.graph.initializer}
    report = RoundingReport()
    for la in layers:
        if la.name not in stats or la.weight not in inits:
            continue
        w = numpy_helper.to_array(inits[la.weight]).astype(np.float64)  # (Cout, Cin/g, kh, kw)
        groups = stats[la.name]
        cout = w.shape[0]
        per = cout // len(groups)
        flat = w.reshape(cout, -1)  # (Cout, D)
        scale = np.max(np.abs(flat), axis=1) / QMAX
        out = np.empty_like(flat)
        err_near = err_fit = 0.0
        for g, st in enumerate(groups):
            rows = slice(g * per, (g + 1) * per)
            q = round_rows(flat[rows], st.h, target=st.target(flat[rows]))
            s = scale[rows, None]
            out[rows] = q * s
            near = np.clip(np.rint(flat[rows] / np.where(s > 0, s, 1)), -QMAX, QMAX) * s
            err_near += st.error(flat[rows], near)
            err_fit += st.error(flat[rows], out[rows])
        if err_fit > err_near:  # never worse than nearest rounding on the data it was fitted on
            continue
        inits[la.weight].CopyFrom(numpy_helper.from_array(out.reshape(w.shape).astype(np.float32), la.weight))
        report.layers[la.name] = (err_near, err_fit)
    return m, report
