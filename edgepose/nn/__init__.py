"""The YOLO-Pose network: config, blocks, model (raw maps), decode, checkpoints. Needs torch."""

from __future__ import annotations

from edgepose.nn.checkpoint import CHECKPOINT_FORMAT, LoadedCheckpoint, load_checkpoint, save_checkpoint
from edgepose.nn.config import (
    Activation,
    ModelConfig,
    available_configs,
    config_from_dict,
    config_to_dict,
    load_config,
    resolve_config,
)
from edgepose.nn.decode import decode
from edgepose.nn.model import PoseModel, build_model, count_parameters, fuse_conv_bn, set_activation

__all__ = [
    "CHECKPOINT_FORMAT",
    "Activation",
    "LoadedCheckpoint",
    "ModelConfig",
    "PoseModel",
    "available_configs",
    "build_model",
    "config_from_dict",
    "config_to_dict",
    "count_parameters",
    "decode",
    "fuse_conv_bn",
    "load_checkpoint",
    "load_config",
    "resolve_config",
    "save_checkpoint",
    "set_activation",
]
