"""The quantization tests' hand-built end-to-end graph (tests/helpers/quant_models.py) is the shape of an
`edgepose export` file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto

from edgepose.spec import DETECTIONS_NAME, INPUT_NAME, NUM_DETS_NAME, TAIL_PREFIX
from tests.helpers.quant_models import K, build_e2e_model


@pytest.fixture(scope="module")
def e2e_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_e2e_model(tmp_path_factory.mktemp("qmodel") / "tiny.onnx")


def test_test_model_is_an_end_to_end_graph(e2e_model: Path) -> None:
    m = onnx.load(str(e2e_model))
    tail = [n for n in m.graph.node if n.name.startswith(TAIL_PREFIX)]
    convs = [n for n in m.graph.node if n.op_type == "Conv"]
    assert len(convs) == 7 and not any(n.name.startswith(TAIL_PREFIX) for n in convs)
    assert {"NonMaxSuppression", "Sigmoid", "ScatterND"} <= {n.op_type for n in tail}
    sess = ort.InferenceSession(str(e2e_model), providers=["CPUExecutionProvider"])
    det, num = sess.run(
        [DETECTIONS_NAME, NUM_DETS_NAME], {INPUT_NAME: np.full((1, 3, 128, 128), 0.5, np.float32)}
    )
    assert det.shape == (1, 20, 6 + 3 * K) and num.shape == (1,) and 0 <= int(num[0]) <= 20
    assert m.graph.output[0].type.tensor_type.elem_type == TensorProto.FLOAT
