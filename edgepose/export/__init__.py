"""Export: checkpoint -> one end-to-end ONNX graph (decode + NMS inside), verified against PyTorch.

`edgepose.export.tail` and `edgepose.export.onnxio` are torch-free (onnx only), so quantization and
third-party import can use them; the rest needs torch and is imported lazily.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from edgepose.export.exporter import ExportReport, export_model

__all__ = ["ExportReport", "export_model"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from edgepose.export import exporter

        return getattr(exporter, name)
    raise AttributeError(f"module 'edgepose.export' has no attribute {name!r}")
