"""Import: wrap a third-party raw pose ONNX (Ultralytics layout) into an edgepose end-to-end graph.

The feature is called "import" throughout (`import_onnx`, `ImportReport`, this package); the CLI spells
it `edgepose export --from-onnx`. Torch-free (onnx, onnxruntime, onnxslim, numpy). Modules, in the
order the pipeline uses them:

- `options`: the closed option sets (stdlib only, so the CLI offers them without onnx);
- `graph`: load the source, normalise its input, append the adapter that feeds the NMS tail;
- `layout`: recognise the output layout from the graph and one probe run, or reject it in one line;
- `end2end`: an output already NMS-free (rows of 6 + 3K): its conventions, the TopK tail instead of
  adapter + NMS tail, and its self-check;
- `meta`: what the source does not say (strides from the candidate count, keypoint names, flip index);
- `verify`: the self-check against a NumPy decode of the source's own raw output;
- `pipeline`: `import_onnx`, the stages in order.

This `__init__` imports nothing at import time (`options` must stay onnx-free); `import_onnx` and
`ImportReport` are loaded on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from edgepose.export.importer.pipeline import ImportReport, import_onnx

__all__ = ["ImportReport", "import_onnx"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from edgepose.export.importer import pipeline

        return getattr(pipeline, name)
    raise AttributeError(f"module 'edgepose.export.importer' has no attribute {name!r}")
