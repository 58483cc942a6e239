"""Per-channel bias correction: remove the mean error each quantized layer adds (measured).

Quantization errors are not zero-mean: weight rounding, a clipped range and the coarse levels near
zero of a SiLU output all shift each output channel's mean, and those shifts add up along the network
(on YOLO11n-pose the keypoint branch moves by whole pixels). Bias correction (Nagel et al., "Data-Free
Quantization", 2019, empirical variant) subtracts the expected shift from each layer's bias.

What is measured, and why "local": every layer L is compared with a float twin of itself that reads the
*quantized* model's tensors (edgepose.quant.twin),

    error_L[c] = mean over images and positions of ( y_L^quantized - y_L^twin )[c]

where the twin runs L and the non-layer ops before it (SiLU, Concat, Resize, ...) in float on the
quantized model's outputs of the layers upstream. So error_L holds what L itself adds: its weights,
the 8-bit rounding of the tensors between the upstream layers and L, and nothing propagated from
upstream, which those layers correct themselves. Correcting every layer at once by its global error
instead (quantized minus float model) counts upstream errors again at every depth and diverges
(measured: AP 51 -> 3 on YOLO11n-pose); the local error needs ONE pass for all layers.

The corrected biases go into the float model; onnxruntime.quantization then quantizes them (int32,
scale = input scale x weight scale) as usual. Layers without a bias get one. MatMul has no bias
input and is left as it is.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import onnx
from onnx import numpy_helper

from edgepose.onnxkit.graph import consumers, with_outputs
from edgepose.quant.graph import Layer
from edgepose.quant.twin import twin_model
from edgepose.runtime.session import cpu_session
from edgepose.spec import INPUT_NAME

BIAS_OPS = ("Conv", "ConvTranspose", "Gemm")


def _channel_mean(x: np.ndarray) -> np.ndarray:
    """Mean over every axis but 1 (channels of NCHW and of (N, C) Gemm outputs)."""
    axes = tuple(a for a in range(x.ndim) if a != 1)
    return x.astype(np.float64).mean(axis=axes)


def local_errors(
    qdq: onnx.ModelProto,
    float_body: onnx.ModelProto,
    layers: Sequence[Layer],
    images: Sequence[np.ndarray],
    threads: int | None = None,
) -> dict[str, np.ndarray]:
    """Per layer (name), the per-channel mean of quantized minus float-twin output over `images`."""
    model, pairs = twin_model(qdq, float_body, layers)
    names = [t for pair in pairs for t in pair]
    sess = cpu_session(with_outputs(model, names).SerializeToString(), threads)
    sums: list[np.ndarray | None] = [None] * len(names)
    for x in images:
        outs = sess.run(names, {INPUT_NAME: x})
        sums = [
            _channel_mean(o) if s is None else s + _channel_mean(o) for s, o in zip(sums, outs, strict=True)
        ]
    out: dict[str, np.ndarray] = {}
    index = {q: i for i, (q, _) in enumerate(pairs)}
    qnodes = {n.name: n for n in qdq.graph.node}
    for la in layers:
        node = qnodes.get(la.name)
        i = index.get(node.output[0]) if node is not None else None
        if i is None or sums[2 * i] is None:
            continue
        out[la.name] = (sums[2 * i] - sums[2 * i + 1]) / len(images)  # type: ignore[operator]
    return out


@dataclass(frozen=True)
class BiasCorrection:
    """What bias correction did: the mean |error| per corrected layer before correction."""

    errors: dict[str, float]  # layer -> mean over channels of |mean error|

    @property
    def mean_abs(self) -> float:
        return float(np.mean(list(self.errors.values()))) if self.errors else 0.0


def apply_bias_correction(
    model: onnx.ModelProto, layers: Sequence[Layer], errors: dict[str, np.ndarray]
) -> tuple[onnx.ModelProto, BiasCorrection]:
    """A copy of `model` with each layer's bias lowered by its mean error (a bias added where missing)."""
    m = onnx.ModelProto()
    m.CopyFrom(model)
    g = m.graph
    nodes = {n.name: n for n in g.node}
    inits = {t.name: t for t in g.initializer}
    readers = {t: len(ns) for t, ns in consumers(g).items()}  # how many inputs read each tensor
    done: dict[str, float] = {}
    for la in layers:
        err = errors.get(la.name)
        node = nodes.get(la.name)
        if err is None or node is None or node.op_type not in BIAS_OPS or not np.all(np.isfinite(err)):
            continue
        if len(node.input) > 2 and node.input[2]:
            old = inits.get(node.input[2])
            if old is None:
                continue  # a computed bias: leave it
            bias = numpy_helper.to_array(old).astype(np.float64).reshape(-1)
            if bias.shape != err.shape:
                continue
            new_name = (
                node.input[2] if readers.get(node.input[2], 0) == 1 else f"{node.input[2]}/ep_bc/{la.name}"
            )
        else:
            bias = np.zeros(err.shape)
            new_name = f"{la.name}/ep_bc/bias"
            while len(node.input) < 3:
                node.input.append("")
        t = numpy_helper.from_array((bias - err).astype(np.float32), new_name)
        if new_name in inits:
            inits[new_name].CopyFrom(t)
        else:
            g.initializer.append(t)
            inits[new_name] = g.initializer[-1]
        node.input[2] = new_name
        done[la.name] = float(np.mean(np.abs(err)))
    return m, BiasCorrection(done)
