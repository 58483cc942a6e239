"""Post-training quantization of end-to-end exports: 8-bit, 16-bit and sensitivity-driven mixed precision.

Built on onnxruntime.quantization (static, QDQ, per-channel weights); the decode/NMS tail stays float.
Never imports torch. Import `edgepose.quant.quantize.quantize_model` for the whole pipeline.
"""

from __future__ import annotations

from edgepose.quant.options import CalibMethod, HighPrecision, LayerPrecision

__all__ = ["CalibMethod", "HighPrecision", "LayerPrecision"]
