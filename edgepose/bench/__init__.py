"""`edgepose bench`: every precision variant against float — COCO OKS accuracy and latency side by side.

ONNX inputs need only the runtime's dependencies (numpy, OpenCV, onnxruntime, pycocotools, matplotlib);
a checkpoint input imports `edgepose.export` (torch) and `edgepose.quant` (onnx) inside the functions that
export and quantize it. Import `edgepose.bench.run.run_bench` for the whole pipeline.
"""

from __future__ import annotations

from edgepose.bench.variants import ALL_VARIANTS, parse_variants

__all__ = ["ALL_VARIANTS", "parse_variants"]
