"""The training loss for a model config's head: YOLO-Pose (`PoseLoss`) or ER-Pose (`ERPoseLoss`)."""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from edgepose.nn.config import HeadKind, ModelConfig
from edgepose.train.loss import LOSS_NAMES, LossWeights, PoseLoss


def make_criterion(
    cfg: ModelConfig, model: nn.Module, sigmas: Sequence[float], weights: LossWeights
) -> tuple[nn.Module, tuple[str, ...]]:
    """(loss module, names of the parts it returns); `weights` are the YOLO-Pose loss's (ER-Pose: its own)."""
    if cfg.head is HeadKind.ERPOSE:
        from edgepose.train.erpose_loss import ERPOSE_LOSS_NAMES, ERPoseLoss

        return ERPoseLoss(cfg.strides, sigmas), ERPOSE_LOSS_NAMES
    return PoseLoss(model.anchors, cfg.strides, sigmas, weights), LOSS_NAMES
