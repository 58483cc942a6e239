"""Per-layer 8-bit sensitivity, measured: how much the raw head outputs move when ONE layer reads 8 bits.

Metric (the `sensitivity` of layer L): the normalised mean squared error of the network's raw outputs
(the tensors the float tail reads) when only L's inputs are quantized to 8 bits and everything else
stays float,

    sens(L) = mean over raw outputs o of  sum_images ||o_L - o||^2 / sum_images ||o||^2

where L's weights (and bias) are the exact dequantized int8 per-channel values of onnxruntime's 8-bit
model and L's activation inputs pass through Q/DQ with that model's calibrated uint8 scale and
zero-point. -10*log10 of it is the SQNR (dB) of the raw outputs; higher sens = more damage = promoted
first. Nothing here depends on layer names, so it ranks graphs it has never seen.

Cost: no re-quantization. Each measurement is the float body with a few constants swapped and one
Q/DQ pair inserted, run on a handful of images (batched when the graph allows it), so ranking N layers
costs about N small session builds + N x images forward passes. The same machinery evaluates any set
of 8-bit layers at once, which `--max-drop` uses to find the fewest high-precision layers whose
raw-output error stays under the limit (high precision is emulated as float there: a 16-bit layer's
own error is ~256x below an 8-bit one's).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import onnx
from onnx import helper, numpy_helper

from edgepose.onnxkit.graph import producers
from edgepose.quant.graph import Layer
from edgepose.quant.options import Progress
from edgepose.runtime.session import cpu_session
from edgepose.spec import INPUT_NAME

_P = "ep_sens/"
STAGE = "sensitivity"  # the progress stage `SensitivityProbe.rank` reports


def _dequantized_initializer(qdq: onnx.ModelProto, dq: onnx.NodeProto) -> np.ndarray:
    """The float values a DequantizeLinear of an initializer produces (per-tensor or per-channel)."""
    inits = {t.name: t for t in qdq.graph.initializer}
    q = numpy_helper.to_array(inits[dq.input[0]]).astype(np.float64)
    scale = numpy_helper.to_array(inits[dq.input[1]]).astype(np.float64)
    zp = numpy_helper.to_array(inits[dq.input[2]]).astype(np.float64) if len(dq.input) > 2 else 0.0
    if scale.ndim == 1 and scale.size > 1:
        axis = next((a.i for a in dq.attribute if a.name == "axis"), 1) % q.ndim
        shape = [1] * q.ndim
        shape[axis] = -1
        scale, zp = scale.reshape(shape), np.reshape(zp, shape) if np.ndim(zp) else zp  # broadcast on axis
    return ((q - zp) * scale).astype(np.float32)


@dataclass
class _Patch:
    """How to make one layer read 8 bits: input index -> constant, or input index -> (scale, zp)."""

    consts: dict[int, onnx.TensorProto] = field(default_factory=dict)
    acts: dict[int, tuple[onnx.TensorProto, onnx.TensorProto]] = field(default_factory=dict)


def _patches(qdq: onnx.ModelProto, layers: Sequence[Layer]) -> list[_Patch | None]:
    """Per layer, its 8-bit inputs as onnxruntime's 8-bit model has them (None: that model left it float)."""
    qprod = producers(qdq.graph)
    qnodes = {n.name: n for n in qdq.graph.node}
    qinits = {t.name: t for t in qdq.graph.initializer}
    out: list[_Patch | None] = []
    for i, la in enumerate(layers):
        qnode, patch = qnodes.get(la.name), _Patch()
        for j, src in enumerate(qnode.input if qnode is not None else []):
            dq = qprod.get(src)
            if dq is None or dq.op_type != "DequantizeLinear":
                continue
            if dq.input[0] in qinits:  # weight or bias: the exact dequantized constant
                patch.consts[j] = numpy_helper.from_array(_dequantized_initializer(qdq, dq), f"{_P}{i}/in{j}")
            else:  # activation: Q/DQ with the 8-bit model's calibrated scale and zero-point
                sz = []
                for k, nm in enumerate(dq.input[1:3]):
                    t = onnx.TensorProto()
                    t.CopyFrom(qinits[nm])
                    t.name = f"{_P}{i}/in{j}/{('scale', 'zp')[k]}"
                    sz.append(t)
                patch.acts[j] = (sz[0], sz[1])
        out.append(patch if patch.consts or patch.acts else None)
    return out


def build_variant(
    body: onnx.ModelProto, layers: Sequence[Layer], patches: Sequence[_Patch | None], eight_bit: Sequence[int]
) -> onnx.ModelProto:
    """The float body with the layers at these indices reading 8-bit inputs (weights stay constants)."""
    m = onnx.ModelProto()
    m.CopyFrom(body)
    g = m.graph
    by_name = {n.name: n for n in g.node}
    order = list(g.node)
    for i in sorted(set(eight_bit)):
        patch = patches[i]
        if patch is None:
            continue
        node = by_name[layers[i].name]
        for j, const in patch.consts.items():
            g.initializer.append(const)
            node.input[j] = const.name
        for j, (scale, zp) in patch.acts.items():
            tag = f"{_P}{i}/in{j}"
            g.initializer.extend([scale, zp])
            q = helper.make_node(
                "QuantizeLinear", [node.input[j], scale.name, zp.name], [f"{tag}/q"], name=f"{tag}/Q"
            )
            dq = helper.make_node(
                "DequantizeLinear", [f"{tag}/q", scale.name, zp.name], [f"{tag}/dq"], name=f"{tag}/DQ"
            )
            at = order.index(node)
            order[at:at] = [q, dq]
            node.input[j] = f"{tag}/dq"
    del g.node[:]
    g.node.extend(order)
    return m


class SensitivityProbe:
    """Raw-output error vs float for any set of 8-bit layers (the rest float), on a few images.

    The metric `search.search_mixed_plan` ranks layers by (`search.SensitivityMetric`). `threads`:
    onnxruntime intra-op threads, None = its default (`runtime.session.session_options`).
    """

    def __init__(
        self,
        body: onnx.ModelProto,
        qdq: onnx.ModelProto,
        layers: Sequence[Layer],
        images: Sequence[np.ndarray],
        threads: int | None = None,
    ) -> None:
        self.body, self.layers, self.threads = body, list(layers), threads
        self.patches = _patches(qdq, self.layers)
        self.quantized = [p is not None for p in self.patches]
        self.batch = np.concatenate(list(images))  # (N, 3, H, W)
        self.images = list(images)
        self.batched = len(body.graph.input[0].type.tensor_type.shape.dim) == 4
        try:  # one run for all images, unless the graph reshapes with a fixed batch of 1
            self.reference = self._run(body)
        except Exception:  # onnxruntime raises its own (Fail, InvalidArgument, ...): any means "no batching"
            self.batched = False
            self.reference = self._run(body)

    def _run(self, model: onnx.ModelProto) -> list[list[np.ndarray]]:
        # quiet: a failed batched trial run is expected; it is retried image by image
        if self.batched:
            free = onnx.ModelProto()
            free.CopyFrom(model)
            _free_batch(free)
            sess = cpu_session(free.SerializeToString(), self.threads, quiet=True)
            outs = sess.run(None, {INPUT_NAME: self.batch})
            return [[o[k : k + 1] for o in outs] for k in range(len(self.images))]
        sess = cpu_session(model.SerializeToString(), self.threads, quiet=True)
        return [sess.run(None, {INPUT_NAME: x}) for x in self.images]

    def error(self, eight_bit: Sequence[int]) -> float:
        """Raw-output NMSE vs float when the layers at these indices read 8 bits."""
        return nmse(self._run(build_variant(self.body, self.layers, self.patches, eight_bit)), self.reference)

    def rank(self, progress: Progress | None = None) -> list[float]:
        """sens(L) for every layer (0 for a layer the 8-bit model left float); reports stage STAGE."""
        out = []
        for i in range(len(self.layers)):
            out.append(self.error([i]) if self.quantized[i] else 0.0)
            if progress:
                progress(STAGE, i + 1, len(self.layers))
        return out


def _free_batch(model: onnx.ModelProto) -> None:
    """Make the input and output batch dimension symbolic (so several images run at once)."""
    for vi in (*model.graph.input, *model.graph.output):
        dims = vi.type.tensor_type.shape.dim
        if len(dims):
            dims[0].Clear()
            dims[0].dim_param = "N"
    del model.graph.value_info[:]


def nmse(outputs: Sequence[Sequence[np.ndarray]], reference: Sequence[Sequence[np.ndarray]]) -> float:
    """Mean over output tensors of sum_images ||y - ref||^2 / sum_images ||ref||^2."""
    per_out = []
    for j in range(len(reference[0])):
        num = sum(
            float(np.sum((o[j].astype(np.float64) - r[j]) ** 2))
            for o, r in zip(outputs, reference, strict=True)
        )
        den = sum(float(np.sum(r[j].astype(np.float64) ** 2)) for r in reference)
        per_out.append(num / max(den, 1e-30))
    return float(np.mean(per_out))
