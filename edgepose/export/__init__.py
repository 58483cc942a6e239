"""Export: checkpoint -> one end-to-end ONNX graph (decode + NMS inside), verified against PyTorch.

`tail`, `decode`, `reference`, `selfcheck`, `slim` and the `importer` subpackage (`export --from-onnx`) are
torch-free, so importing a third-party model needs no training stack; `exporter`, `deploy` and
`verify` need torch, so this package's front door imports them lazily. Quantization uses none of this
package (the shared ONNX helpers are in `edgepose.onnxkit`).
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
