"""Building blocks of the YOLOv5-v6 CSP-Darknet family, restricted to ops embedded compilers accept.

Conv-BN-Act, bottleneck, C3 (CSP with 3 convs), SPPF (stacked 5x5 max-pools). No slicing
(Focus), no dynamic shapes; the activation is a separate module so it can be swapped in place.
"""

from __future__ import annotations

import torch
from torch import nn

from edgepose.nn.config import Activation

BN_EPS = 1e-3
BN_MOMENTUM = 0.03
ACTIVATION_TYPES: tuple[type[nn.Module], ...] = (nn.ReLU, nn.ReLU6, nn.SiLU)


def make_activation(act: Activation | str) -> nn.Module:
    act = Activation(act)
    if act is Activation.RELU:
        return nn.ReLU(inplace=True)
    if act is Activation.RELU6:
        return nn.ReLU6(inplace=True)
    return nn.SiLU(inplace=True)


class ConvBNAct(nn.Module):
    """Conv2d (no bias) -> BatchNorm2d -> activation; 'same' padding for odd kernels."""

    def __init__(
        self,
        c1: int,
        c2: int,
        k: int = 1,
        s: int = 1,
        act: Activation = Activation.RELU,
        p: int | None = None,
    ) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c1, c2, k, s, k // 2 if p is None else p, bias=False)
        self.bn: nn.Module = nn.BatchNorm2d(c2, eps=BN_EPS, momentum=BN_MOMENTUM)
        self.act = make_activation(act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(self.conv(x)))


class Bottleneck(nn.Module):
    def __init__(self, c: int, shortcut: bool, act: Activation) -> None:
        super().__init__()
        self.cv1 = ConvBNAct(c, c, 1, act=act)
        self.cv2 = ConvBNAct(c, c, 3, act=act)
        self.add = shortcut

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.cv2(self.cv1(x))
        return x + y if self.add else y


class C3(nn.Module):
    """CSP bottleneck with 3 convs: two 1x1 branches (one through n bottlenecks), concat, 1x1."""

    def __init__(self, c1: int, c2: int, n: int, shortcut: bool, act: Activation) -> None:
        super().__init__()
        c_ = c2 // 2
        self.cv1 = ConvBNAct(c1, c_, 1, act=act)
        self.cv2 = ConvBNAct(c1, c_, 1, act=act)
        self.m = nn.Sequential(*(Bottleneck(c_, shortcut, act) for _ in range(n)))
        self.cv3 = ConvBNAct(2 * c_, c2, 1, act=act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.cv3(torch.cat((self.m(self.cv1(x)), self.cv2(x)), 1))  # (B, 2c_, H, W)


class SPPF(nn.Module):
    """Spatial pyramid pooling, fast: three stacked 5x5 max-pools = pools of 5, 9 and 13."""

    def __init__(self, c1: int, c2: int, act: Activation) -> None:
        super().__init__()
        c_ = c1 // 2
        self.cv1 = ConvBNAct(c1, c_, 1, act=act)
        self.pool = nn.MaxPool2d(5, 1, 2)
        self.cv2 = ConvBNAct(4 * c_, c2, 1, act=act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.cv1(x)
        y1 = self.pool(x)
        y2 = self.pool(y1)
        return self.cv2(torch.cat((x, y1, y2, self.pool(y2)), 1))  # (B, 4c_, H, W)
