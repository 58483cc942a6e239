"""The ONNX toolkit below `export/` and `quant/`: what every tool that reads or writes an ONNX file shares.

- `onnxkit.ops`: operator-name sets ("already quantized", Q/DQ, integer layers); standard library only,
  so the bench reads them on a board without onnx.
- `onnxkit.graph`: graph queries (producers, consumers, graph inputs, the tail's nodes, opsets, counts).
- `onnxkit.model`: the file facts (IR-version policy, metadata, checker, atomic save) and `finalize`,
  the one sequence the exporter, the importer and quantization end with.

This package's `__init__` imports nothing, so `edgepose.onnxkit.ops` stays onnx-free. The onnxruntime
session options live in `edgepose.runtime.session` (the runtime needs them without onnx).
"""
