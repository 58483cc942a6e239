"""PoseModel: CSP-Darknet backbone + PANet neck + anchor-based YOLO-Pose head (raw maps only).

Decoding lives in `edgepose.nn.decode`, the loss in `edgepose.train`: `forward` returns the same
list of raw maps in train and eval, so the graph the exporter traces is the graph that was trained.
"""

from __future__ import annotations

import copy
import dataclasses
import math
from typing import TYPE_CHECKING

import torch
from torch import nn

from edgepose.nn.blocks import ACTIVATION_TYPES, C3, SPPF, ConvBNAct, make_activation
from edgepose.nn.config import Activation, HeadKind, ModelConfig
from edgepose.spec import row_width

if TYPE_CHECKING:
    from edgepose.nn.erpose import ERPoseModel

# YOLOv5 base widths/depths: stem, stride 4, 8, 16, 32; the P6 variants use 768 at stride 32 and
# 1024 at stride 64 (as YOLOv5-P6).
_STAGE_WIDTHS = {3: (64, 128, 256, 512, 1024), 4: (64, 128, 256, 512, 768, 1024)}
_STAGE_DEPTHS = {3: (3, 6, 9, 3), 4: (3, 6, 9, 3, 3)}
_NECK_DEPTH = 3


def _width(c: int, mult: float) -> int:
    return int(math.ceil(c * mult / 8) * 8)


def _depth(n: int, mult: float) -> int:
    return max(round(n * mult), 1)


class Backbone(nn.Module):
    """Stride-2 6x6 conv stem (replaces Focus slicing), then per stage a stride-2 conv + C3; SPPF on top."""

    def __init__(self, widths: list[int], depths: list[int], act: Activation) -> None:
        super().__init__()
        self.stem = ConvBNAct(3, widths[0], 6, 2, act=act, p=2)
        self.stages = nn.ModuleList(
            nn.Sequential(
                ConvBNAct(widths[i], widths[i + 1], 3, 2, act=act),
                C3(widths[i + 1], widths[i + 1], n, True, act),
            )
            for i, n in enumerate(depths)
        )
        self.sppf = SPPF(widths[-1], widths[-1], act)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """-> features at strides 8, 16, 32 (, 64); the last one after SPPF."""
        x = self.stem(x)
        feats = []
        for stage in self.stages:
            x = stage(x)
            feats.append(x)
        feats[-1] = self.sppf(feats[-1])
        return feats[1:]  # drop stride 4


class Neck(nn.Module):
    """PANet: top-down (1x1 lateral, nearest x2 upsample, concat, C3), then bottom-up (3x3/s2, concat, C3)."""

    def __init__(self, chans: list[int], n: int, act: Activation) -> None:
        super().__init__()
        L = len(chans)
        # lateral[i] maps the level-(i+1) path to chans[i] before upsampling into level i
        self.lateral = nn.ModuleList(ConvBNAct(chans[i + 1], chans[i], 1, act=act) for i in range(L - 1))
        self.td = nn.ModuleList(C3(2 * chans[i], chans[i], n, False, act) for i in range(L - 1))
        self.up = nn.Upsample(scale_factor=2.0, mode="nearest")
        self.down = nn.ModuleList(ConvBNAct(chans[i], chans[i], 3, 2, act=act) for i in range(L - 1))
        self.bu = nn.ModuleList(C3(2 * chans[i], chans[i + 1], n, False, act) for i in range(L - 1))

    def forward(self, feats: list[torch.Tensor]) -> list[torch.Tensor]:
        L = len(feats)
        x = feats[-1]
        lats: list[torch.Tensor] = [x] * (L - 1)
        for i in range(L - 2, -1, -1):
            lats[i] = self.lateral[i](x)
            x = self.td[i](torch.cat((self.up(lats[i]), feats[i]), 1))  # (B, 2c_i, H_i, W_i)
        outs = [x]
        for i in range(L - 1):
            x = self.bu[i](torch.cat((self.down[i](x), lats[i]), 1))  # (B, 2c_i, H_i+1, W_i+1)
            outs.append(x)
        return outs


class Head(nn.Module):
    """One 1x1 conv per level: A x (6 + 3K) channels = [tx, ty, tw, th, obj, cls, (kx, ky, kc) x K]."""

    def __init__(self, chans: list[int], num_anchors: int, num_keypoints: int) -> None:
        super().__init__()
        # one channel per column of a detection row: 4 box + obj (the score) + cls + K x (x, y, conf)
        self.na, self.no = num_anchors, row_width(num_keypoints)
        self.convs = nn.ModuleList(nn.Conv2d(c, self.na * self.no, 1) for c in chans)

    def forward(self, feats: list[torch.Tensor]) -> list[torch.Tensor]:
        outs = []
        for conv, f in zip(self.convs, feats, strict=True):
            y = conv(f)
            b, _, h, w = y.shape
            y = y.view(b, self.na, self.no, h, w).permute(0, 1, 3, 4, 2).contiguous()  # (B, A, H, W, 6+3K)
            outs.append(y)
        return outs


def backbone_and_neck(cfg: ModelConfig) -> tuple[Backbone, Neck, list[int]]:
    """The family's shared trunk for `cfg` (both heads sit on it) and the neck's output channels per level."""
    n_levels = len(cfg.strides)
    widths = [_width(c, cfg.width_multiple) for c in _STAGE_WIDTHS[n_levels]]
    depths = [_depth(n, cfg.depth_multiple) for n in _STAGE_DEPTHS[n_levels]]
    chans = widths[2:]  # strides 8 .. max
    backbone = Backbone(widths, depths, cfg.activation)  # before the neck: the seeded init order
    return backbone, Neck(chans, _depth(_NECK_DEPTH, cfg.depth_multiple), cfg.activation), chans


class PoseModel(nn.Module):
    """YOLO-Pose network: (B, 3, H, W) RGB in [0, 1] -> per level raw maps (B, A, H/s, W/s, 6 + 3K)."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.strides = tuple(cfg.strides)
        self.num_keypoints = cfg.num_keypoints
        self.num_anchors = cfg.num_anchors
        L = len(cfg.strides)
        self.backbone, self.neck, chans = backbone_and_neck(cfg)
        self.head = Head(chans, self.num_anchors, self.num_keypoints)
        anchors = torch.tensor(cfg.anchors, dtype=torch.float32).view(L, self.num_anchors, 2)  # (L, A, 2)
        self.register_buffer("anchors", anchors)
        self._init_biases()

    def _init_biases(self) -> None:
        # YOLOv5 priors: ~8 objects per image spread over the level's cells (YOLOv5 assumes 640 px;
        # we use the config's input size), and a rare class prior, so early steps aren't all false positives.
        for conv, s in zip(self.head.convs, self.strides, strict=True):
            b = conv.bias.detach().view(self.num_anchors, -1)  # (A, 6+3K)
            b[:, 4] = math.log(8 / (self.cfg.input_size / s) ** 2)
            b[:, 5] = math.log(0.01 / 0.99)
            conv.bias = nn.Parameter(b.view(-1).clone())

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return self.head(self.neck(self.backbone(x)))


def build_model(cfg: ModelConfig) -> PoseModel | ERPoseModel:
    """The network `cfg.head` names: PoseModel (YOLO-Pose) or ERPoseModel (edgepose.nn.erpose)."""
    if cfg.head is HeadKind.ERPOSE:
        from edgepose.nn.erpose import ERPoseModel

        return ERPoseModel(cfg)
    return PoseModel(cfg)


def count_parameters(model: nn.Module) -> int:
    return sum(t.numel() for t in model.parameters())


def set_activation(model: nn.Module, act: Activation) -> None:
    """Replace every activation module in place (e.g. SiLU -> ReLU to fine-tune); updates `model.cfg`."""
    for parent in list(model.modules()):
        for name, child in parent.named_children():
            if isinstance(child, ACTIVATION_TYPES):
                setattr(parent, name, make_activation(act))
    cfg = getattr(model, "cfg", None)
    if isinstance(cfg, ModelConfig):
        model.cfg = dataclasses.replace(cfg, activation=act)


def fuse_conv_bn(model: PoseModel) -> PoseModel:
    """Deep copy in eval mode with every BatchNorm folded into its conv (the conv gains a bias)."""
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    fused = copy.deepcopy(model).eval()
    for m in fused.modules():
        if isinstance(m, ConvBNAct) and isinstance(m.bn, nn.BatchNorm2d):
            m.conv = fuse_conv_bn_eval(m.conv, m.bn)
            m.bn = nn.Identity()
    return fused
