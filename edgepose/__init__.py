"""edgepose: YOLO-Pose from training to an embedded board.

Importing the package is cheap and torch-free; heavy pieces live in subpackages
(`edgepose.nn`, `edgepose.train`, `edgepose.export` need torch; `edgepose.runtime`
and `edgepose.quant` do not).
"""

from __future__ import annotations

__version__ = "0.1.0"
