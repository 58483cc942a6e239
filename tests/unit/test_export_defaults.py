"""The exporter reads its defaults from edgepose.defaults when it runs: editing them there changes what
`export_model` (and so `edgepose export`) bakes into the graph."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from edgepose import defaults
from edgepose.defaults import Thresholds
from edgepose.errors import ExportError
from edgepose.export.tail import check_thresholds
from edgepose.onnxkit.graph import default_opset
from edgepose.onnxkit.model import spec_of
from edgepose.spec import DETECTIONS_NAME, IOU_THR_NAME, MAX_DET_NAME, SCORE_THR_NAME


def _baked(path: Path) -> tuple[onnx.ModelProto, dict[str, np.ndarray]]:
    m = onnx.load(str(path))
    return m, {t.name: numpy_helper.to_array(t) for t in m.graph.initializer}


def test_export_bakes_the_defaults_of_the_moment(
    lively_checkpoint: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from edgepose.export import export_model

    monkeypatch.setattr(defaults, "DEPLOY", Thresholds(conf=0.3, iou=0.6, max_det=40))
    monkeypatch.setattr(defaults, "DEFAULT_OPSET", 18)
    r = export_model(lively_checkpoint, tmp_path / "m.onnx", verify=False)
    m, init = _baked(r.path)
    assert init[IOU_THR_NAME] == np.float32(0.6) and init[SCORE_THR_NAME] == np.float32(0.3)
    assert init[MAX_DET_NAME] == 40 and init[IOU_THR_NAME].dtype == np.float32
    assert (r.opset, default_opset(m)) == (18, 18)
    out = {o.name: [d.dim_value for d in o.type.tensor_type.shape.dim] for o in m.graph.output}
    assert out[DETECTIONS_NAME] == [1, 40, 57]  # max_det fixes the output shape
    spec = spec_of(m)
    assert (spec.conf_threshold, spec.iou_threshold, spec.max_det) == (0.3, 0.6, 40)

    given = export_model(lively_checkpoint, tmp_path / "g.onnx", iou=0.5, opset=17, verify=False)
    _, init = _baked(given.path)
    assert init[IOU_THR_NAME] == np.float32(0.5) and init[SCORE_THR_NAME] == np.float32(0.3)


def test_threshold_messages_quote_the_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(defaults, "DEPLOY", Thresholds(conf=0.3, iou=0.6, max_det=40))
    with pytest.raises(
        ExportError, match=r"^--iou 1\.5 is out of range; use a value in \[0, 1\] \(e\.g\. --iou 0\.6\)$"
    ):
        check_thresholds(0.25, 1.5, 100)
    with pytest.raises(ExportError, match=r"^--max-det 0 must be >= 1 \(40 is the default"):
        check_thresholds(0.25, 0.45, 0)
