"""`simplify`: onnxslim on an ONNX graph; torch-free, so both the exporter and the importer use it.

Not in `edgepose.onnxkit`: the toolkit is shared with quantization, which must not need onnxslim. The
import is lazy, so a base install without onnxslim can import this module.
"""

from __future__ import annotations

import onnx


def simplify(model: onnx.ModelProto) -> onnx.ModelProto:
    """onnxslim (constant folding, dead-node and redundant-reshape removal); keeps I/O names."""
    import onnxslim

    return onnxslim.slim(model)
