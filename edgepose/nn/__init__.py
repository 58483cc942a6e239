"""The YOLO-Pose network: config, blocks, model (raw maps), decode, checkpoints.

The names below load their module on first use: `import edgepose.nn.config` (or `from edgepose.nn import
resolve_config`) stays torch-free; `build_model` and the checkpoint functions need torch. `decode` is
imported from its module (`from edgepose.nn.decode import decode`): a lazy package attribute of the same
name as a submodule would turn into the module once anything imports the submodule.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
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
    from edgepose.nn.model import PoseModel, build_model, count_parameters, fuse_conv_bn, set_activation

_HOME = {
    "CHECKPOINT_FORMAT": "checkpoint",
    "LoadedCheckpoint": "checkpoint",
    "load_checkpoint": "checkpoint",
    "save_checkpoint": "checkpoint",
    "Activation": "config",
    "ModelConfig": "config",
    "available_configs": "config",
    "config_from_dict": "config",
    "config_to_dict": "config",
    "load_config": "config",
    "resolve_config": "config",
    "PoseModel": "model",
    "build_model": "model",
    "count_parameters": "model",
    "fuse_conv_bn": "model",
    "set_activation": "model",
}
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
    "fuse_conv_bn",
    "load_checkpoint",
    "load_config",
    "resolve_config",
    "save_checkpoint",
    "set_activation",
]


def __getattr__(name: str) -> Any:
    if name in _HOME:
        return getattr(importlib.import_module(f"edgepose.nn.{_HOME[name]}"), name)
    raise AttributeError(f"module 'edgepose.nn' has no attribute {name!r}")
