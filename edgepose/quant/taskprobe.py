"""Task-aware sensitivity: how much each layer's 8 bits damage the decoded detections, measured.

The unit is fidelity to float (edgepose.quant.fidelity): the drop in mean OKS x score agreement of the
people the float model finds, after decode and NMS, on a few calibration images. No labels are needed.
Raw-tensor NMSE (edgepose.quant.fidelity.nmse) is dominated by pixel coordinates and ranks the score
branch last; this unit weighs boxes, scores and keypoints as a user sees them.

What "layer L at 8 bits" means here: the float model with L's weights and bias at the exact values of
onnxruntime's 8-bit model, and every activation tensor L reads - walked upstream through non-layer ops
(SiLU, Concat, Split, Resize, ...) to the producing layers, as a precision plan promotes them
(edgepose.quant.graph.chain_tensors) - passing through that model's Q/DQ. Everything else stays float.
The same machinery evaluates any set of 8-bit layers, so a whole plan is checked as a whole.

Probe images are chosen without labels: the calibration images on which the float model finds the
most people (a photo without anyone in it says nothing about keypoints).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import onnx
import onnxruntime as ort
from onnx import helper

from edgepose.defaults import EVAL
from edgepose.onnxkit.graph import consumers, producers, with_outputs
from edgepose.quant.fidelity import DEFAULT_REF_CONF, Detections, Fidelity, FidelityMeter
from edgepose.quant.graph import Layer, chain_tensors, dequantized_initializer
from edgepose.runtime.session import cpu_session
from edgepose.spec import (
    DETECTIONS_NAME,
    INPUT_NAME,
    IOU_THR_NAME,
    MAX_DET_NAME,
    NUM_DETS_NAME,
    SCORE_THR_NAME,
    TAIL_PREFIX,
    PoseSpec,
)

_P = "ep_probe/"
# Candidates at the COCO evaluation setting: a low score threshold so a score that falls is still matched.
PROBE_CONF, PROBE_IOU = EVAL.conf, EVAL.iou


def _feeds(session: ort.InferenceSession, spec: PoseSpec) -> dict[str, np.ndarray]:
    """Threshold overrides the graph accepts: the low probe threshold, NMS IoU, every row."""
    values = {SCORE_THR_NAME: (PROBE_CONF, np.float32), IOU_THR_NAME: (PROBE_IOU, np.float32),
              MAX_DET_NAME: (spec.max_det, np.int64)}  # fmt: skip
    out = {}
    for i in session.get_inputs():
        if i.name in values:
            v, dt = values[i.name]
            out[i.name] = np.full([1] * len(i.shape), v, dt)
    return out


def nms_outputs(model: onnx.ModelProto) -> list[str]:
    """The selected-indices tensors of the tail's NonMaxSuppression nodes."""
    return [
        n.output[0]
        for n in model.graph.node
        if n.op_type == "NonMaxSuppression" and n.name.startswith(TAIL_PREFIX)
    ]


def anchored_model(model: onnx.ModelProto, selections: Sequence[str]) -> onnx.ModelProto:
    """A copy whose NonMaxSuppression outputs are graph inputs: feed the float model's selection and
    the rows come out for exactly the float model's candidates, in its order."""
    m = onnx.ModelProto()
    m.CopyFrom(model)
    keep = [n for n in m.graph.node if not (n.op_type == "NonMaxSuppression" and n.output[0] in selections)]
    del m.graph.node[:]
    m.graph.node.extend(keep)
    m.graph.input.extend(
        helper.make_tensor_value_info(t, onnx.TensorProto.INT64, [None, 3]) for t in selections
    )
    return m


def run_detections(
    model: onnx.ModelProto,
    spec: PoseSpec,
    images: Sequence[np.ndarray],
    threads: int | None = None,
    selections: Sequence[dict[str, np.ndarray]] | None = None,
) -> list[Detections]:
    """The end-to-end model's detections on each (1, 3, H, W) image, in network pixels.

    With `selections` (per image, NMS output name -> the float model's selected indices) the model is
    run anchored: its rows are the float model's candidates, one to one.
    """
    if selections is not None:
        model = anchored_model(model, list(selections[0]) if selections else [])
    sess = cpu_session(model.SerializeToString(), threads)
    feeds = _feeds(sess, spec)
    out = []
    for k, x in enumerate(images):
        extra = selections[k] if selections is not None else {}
        dets, num = sess.run([DETECTIONS_NAME, NUM_DETS_NAME], {INPUT_NAME: x, **feeds, **extra})
        out.append(Detections.from_rows(dets[0], int(np.ravel(num)[0]), spec.num_keypoints))
    return out


def float_selections(
    model: onnx.ModelProto, spec: PoseSpec, images: Sequence[np.ndarray], threads: int | None = None
) -> list[dict[str, np.ndarray]]:
    """Per image, the float model's NMS selections (what anchored runs are fed)."""
    names = nms_outputs(model)
    sess = cpu_session(with_outputs(model, names, onnx.TensorProto.INT64).SerializeToString(), threads)
    feeds = _feeds(sess, spec)
    return [dict(zip(names, sess.run(names, {INPUT_NAME: x, **feeds}), strict=True)) for x in images]


def pick_probe_images(
    model: onnx.ModelProto,
    spec: PoseSpec,
    images: Sequence[np.ndarray],
    num: int,
    threads: int | None = None,
    ref_conf: float = DEFAULT_REF_CONF,
) -> tuple[list[int], list[Detections]]:
    """Indices of the `num` images where the float model finds the most people (ties: file order)."""
    dets = run_detections(model, spec, images, threads)
    counts = [int(np.sum(d.scores >= ref_conf)) for d in dets]
    order = sorted(range(len(images)), key=lambda i: (-counts[i], i))[:num]
    order.sort()
    return order, [dets[i] for i in order]


class TaskProbe:
    """Fidelity to float of any quantized model, and of the model with any set of layers at 8 bits (the
    rest float) when built with `qdq`, the all-8-bit model whose constants and Q/DQ pairs those use."""

    def __init__(
        self,
        model: onnx.ModelProto,
        qdq: onnx.ModelProto | None,
        layers: Sequence[Layer],
        spec: PoseSpec,
        images: Sequence[np.ndarray],
        *,
        float_tail: set[str],
        reference: Sequence[Detections] | None = None,
        threads: int | None = None,
        ref_conf: float = DEFAULT_REF_CONF,
    ) -> None:
        self.model, self.layers, self.spec = model, list(layers), spec
        self.images, self.threads, self.ref_conf = list(images), threads, ref_conf
        self.reference = list(reference) if reference is not None else self.end_to_end(model)
        # Anchored: every model is scored at the float model's selected candidates (no NMS flips, so
        # a small change gives a small drop); end_to_end/fidelity_end_to_end are what bench measures.
        self.selections = float_selections(model, spec, self.images, threads) if nms_outputs(model) else None
        self.anchored_reference = self.detections(model) if self.selections is not None else self.reference
        self._float = set(float_tail)
        self._chains = [chain_tensors([la], model.graph, self._float) for la in self.layers]
        # without `qdq` (int16: no 8-bit model is built) it measures whole models only
        self._qdq_consts = (
            _quantized_constants(qdq, self.layers) if qdq is not None else [{} for _ in self.layers]
        )
        self._act = _activation_qdq(qdq) if qdq is not None else {}
        self.quantized = [bool(c) for c in self._qdq_consts]

    def detections(self, model: onnx.ModelProto) -> list[Detections]:
        """Anchored detections (at the float model's candidates) when the graph has an NMS tail."""
        return run_detections(model, self.spec, self.images, self.threads, self.selections)

    def end_to_end(self, model: onnx.ModelProto) -> list[Detections]:
        return run_detections(model, self.spec, self.images, self.threads)

    def fidelity_of(self, model: onnx.ModelProto) -> Fidelity:
        """Fidelity of any end-to-end model (e.g. a real quantized one) at the float model's detections."""
        meter = FidelityMeter(self.spec.sigmas, self.ref_conf)
        for ref, other in zip(self.anchored_reference, self.detections(model), strict=True):
            if self.selections is not None:
                meter.add_paired(ref, other)
            else:
                meter.add(ref, other)
        return meter.result()

    def fidelity_end_to_end(self, model: onnx.ModelProto) -> Fidelity:
        """Fidelity as bench measures it: the model's own NMS, people matched by OKS."""
        meter = FidelityMeter(self.spec.sigmas, self.ref_conf)
        for ref, other in zip(self.reference, self.end_to_end(model), strict=True):
            meter.add(ref, other)
        return meter.result()

    def variant(self, eight_bit: Sequence[int]) -> onnx.ModelProto:
        """The float model with the layers at these indices (and the tensors they read) at 8 bits."""
        m = onnx.ModelProto()
        m.CopyFrom(self.model)
        g = m.graph
        nodes = {n.name: n for n in g.node}
        tensors: set[str] = set()
        for i in sorted(set(eight_bit)):
            node = nodes[self.layers[i].name]
            for j, const in self._qdq_consts[i].items():
                t = onnx.TensorProto()
                t.CopyFrom(const)
                g.initializer.append(t)
                while len(node.input) <= j:  # a bias the 8-bit model gained from bias correction
                    node.input.append("")
                node.input[j] = t.name
            tensors.update(self._chains[i])
        _insert_qdq(g, sorted(t for t in tensors if t in self._act), self._act, self._float)
        return m

    def fidelity(self, eight_bit: Sequence[int]) -> Fidelity:
        return self.fidelity_of(self.variant(eight_bit))

    def rank(self, progress: Callable[[int, int], None] | None = None) -> list[float]:
        """Per layer, the fidelity drop with only that layer at 8 bits (0 for a layer left float)."""
        out = []
        for i in range(len(self.layers)):
            out.append(self.fidelity([i]).drop if self.quantized[i] else 0.0)
            if progress:
                progress(i + 1, len(self.layers))
        return out


def _quantized_constants(qdq: onnx.ModelProto, layers: Sequence[Layer]) -> list[dict[int, onnx.TensorProto]]:
    """Per layer: input index -> its exact dequantized weight/bias in the 8-bit model (empty: float)."""
    prod = producers(qdq.graph)
    qnodes = {n.name: n for n in qdq.graph.node}
    inits = {t.name for t in qdq.graph.initializer}
    out: list[dict[int, onnx.TensorProto]] = []
    for i, la in enumerate(layers):
        node, consts = qnodes.get(la.name), {}
        for j, src in enumerate(node.input if node is not None else []):
            dq = prod.get(src)
            if j == 0 or dq is None or dq.op_type != "DequantizeLinear" or dq.input[0] not in inits:
                continue
            value = dequantized_initializer(qdq, dq)
            consts[j] = onnx.numpy_helper.from_array(value, f"{_P}{i}/in{j}")
        out.append(consts)
    return out


def _activation_qdq(qdq: onnx.ModelProto) -> dict[str, tuple[onnx.TensorProto, onnx.TensorProto]]:
    """Activation tensor -> (scale, zero point) of the Q node that quantizes it in the 8-bit model."""
    inits = {t.name: t for t in qdq.graph.initializer}
    out = {}
    for n in qdq.graph.node:
        if n.op_type != "QuantizeLinear" or n.input[0] in inits or n.input[0] in out:
            continue
        if len(n.input) < 3 or n.input[1] not in inits or n.input[2] not in inits:
            continue
        out[n.input[0]] = (inits[n.input[1]], inits[n.input[2]])
    return out


def _insert_qdq(
    g: onnx.GraphProto,
    tensors: Sequence[str],
    act: dict[str, tuple[onnx.TensorProto, onnx.TensorProto]],
    float_region: set[str],
) -> None:
    """Put Q -> DQ (the 8-bit model's scale, zero point) on each tensor; readers outside `float_region`
    read the DQ output."""
    if not tensors:
        return
    readers = consumers(g)
    prod = producers(g)
    order = list(g.node)
    for k, t in enumerate(tensors):
        scale, zp = act[t]
        tag = f"{_P}t{k}"
        s, z = onnx.TensorProto(), onnx.TensorProto()
        s.CopyFrom(scale)
        z.CopyFrom(zp)
        s.name, z.name = f"{tag}/scale", f"{tag}/zp"
        g.initializer.extend([s, z])
        q = helper.make_node("QuantizeLinear", [t, s.name, z.name], [f"{tag}/q"], name=f"{tag}/Q")
        dq = helper.make_node(
            "DequantizeLinear", [f"{tag}/q", s.name, z.name], [f"{tag}/dq"], name=f"{tag}/DQ"
        )
        for r in readers.get(t, []):
            if r.name in float_region:
                continue
            for j, i in enumerate(r.input):
                if i == t:
                    r.input[j] = dq.output[0]
        p = prod.get(t)
        at = order.index(p) + 1 if p is not None else 0
        order[at:at] = [q, dq]
    del g.node[:]
    g.node.extend(order)
