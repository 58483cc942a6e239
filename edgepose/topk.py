"""NMS-free selection in NumPy: the rule the exported ER-Pose graph's TopK tail implements.

Keep the `max_det` highest scores, best first, then drop those not above the score threshold (strictly,
as NonMaxSuppression's score_threshold); equal scores keep the lower candidate index first. The order of
the two steps does not matter: the kept rows are sorted, so "top-k, then threshold" keeps exactly the
rows "threshold, then top-k" keeps. Used by training-time evaluation and by the export verification.
"""

from __future__ import annotations

import numpy as np


def topk_select(scores: np.ndarray, conf: float, max_det: int) -> np.ndarray:
    """Candidate indices (n,) int64 of one image's scores (N,), best first; n <= max_det."""
    order = np.argsort(-scores, kind="stable")[:max_det]
    return order[scores[order] > conf].astype(np.int64)
