"""A tiny Ultralytics-style raw pose ONNX (torch-exported): the stand-in for YOLOv8/YOLO11-pose in tests.

`make_toy` builds the torch net (single output (B, 4 + 1 + 3K, N): cx, cy, w, h in input pixels, person
score, K x (x, y, visibility), strides 8, 16, 32, SiLU); `export_toy` writes it as Ultralytics' exporter
would (TorchScript exporter, opset 17, IR pinned for onnxruntime).
"""

from __future__ import annotations

from pathlib import Path

import onnx

SEED = 110
SIZE = 128
K = 17
STRIDES = (8, 16, 32)


def toy_stem():  # -> torch.nn.ModuleList
    """Five 3x3 stride-2 convs (strides 2 ... 32); the last three feed the heads."""
    from torch import nn

    ch = (8, 12, 16, 16, 16)
    return nn.ModuleList(nn.Conv2d(a, b, 3, 2, 1) for a, b in zip((3, *ch[:-1]), ch, strict=True))


def anchor_points(feats: list, strides: tuple[int, ...]) -> tuple:
    """Cell centres in grid units (N, 2) x, y and each cell's stride (N, 1), levels concatenated."""
    import torch

    anchors, st = [], []
    for f, s in zip(feats, strides, strict=True):
        h, w = f.shape[2:]
        gy, gx = torch.meshgrid(
            torch.arange(h, dtype=torch.float32) + 0.5,
            torch.arange(w, dtype=torch.float32) + 0.5,
            indexing="ij",
        )
        anchors.append(torch.stack((gx, gy), -1).view(-1, 2))  # (h*w, 2)
        st.append(torch.full((h * w, 1), float(s), dtype=torch.float32))
    return torch.cat(anchors), torch.cat(st)


def make_toy(
    k: int = K, vis_logit: bool = False, seed: int = SEED, extra_channels: int = 0, score_bias: float = -0.5
):
    """A tiny torch pose net whose single output is (B, 4 + 1 + 3K [+ extra], N), Ultralytics conventions.

    `score_bias`: the person-score logit's bias; lower it for a few confident people per image instead of
    scores spread over (0, 1)."""
    import torch
    from torch import nn

    torch.set_num_threads(1)

    class ToyUltraPose(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.strides = STRIDES
            self.stem = toy_stem()
            self.box = nn.ModuleList(nn.Conv2d(16, 4, 1) for _ in range(3))
            self.cls = nn.ModuleList(nn.Conv2d(16, 1 + extra_channels, 1) for _ in range(3))
            self.kpt = nn.ModuleList(nn.Conv2d(16, 3 * k, 1) for _ in range(3))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            feats = []
            for i, conv in enumerate(self.stem):
                x = nn.functional.silu(conv(x))
                if i >= 2:
                    feats.append(x)  # strides 8, 16, 32
            b = x.shape[0]
            anc, st = anchor_points(feats, self.strides)  # (N, 2), (N, 1)
            anc, st = (
                anc.transpose(0, 1).unsqueeze(0),
                st.transpose(0, 1).unsqueeze(0),
            )  # (1, 2, N), (1, 1, N)
            dist = torch.cat(
                [m(f).view(b, 4, -1) for m, f in zip(self.box, feats, strict=True)], 2
            )  # (B, 4, N)
            cls = torch.cat(
                [m(f).view(b, 1 + extra_channels, -1) for m, f in zip(self.cls, feats, strict=True)], 2
            )
            kpt = torch.cat(
                [m(f).view(b, 3 * k, -1) for m, f in zip(self.kpt, feats, strict=True)], 2
            )  # (B, 3K, N)
            lt, rb = (nn.functional.softplus(dist) * 6.0).chunk(2, 1)  # (B, 2, N) each, grid units
            x1y1, x2y2 = anc - lt, anc + rb
            box = torch.cat(((x1y1 + x2y2) / 2, x2y2 - x1y1), 1) * st  # (B, 4, N) cx, cy, w, h in px
            y = kpt.view(b, k, 3, -1)  # (B, K, 3, N)
            a = (y[:, :, :2] * 2.0 + (anc.unsqueeze(1) - 0.5)) * st.unsqueeze(1)  # (B, K, 2, N)
            vis = y[:, :, 2:3] if vis_logit else y[:, :, 2:3].sigmoid()
            kpts = torch.cat((a, vis), 2).view(b, 3 * k, -1)  # (B, 3K, N)
            return torch.cat((box, cls.sigmoid(), kpts), 1)  # (B, 4 + 1 + 3K, N)

    g = torch.Generator().manual_seed(seed)
    model = ToyUltraPose()
    with torch.no_grad():
        for p in model.parameters():  # variance-preserving: head outputs of a few units, boxes of a few cells
            std = (2.0 / p[0].numel()) ** 0.5 if p.dim() > 1 else 0.3
            p.copy_(torch.randn(p.shape, generator=g) * std)
        for m in model.kpt:
            m.weight.mul_(0.3)
            m.bias.view(k, 3)[:, 2].mul_(8.0)  # visibility logits of a few units: outside [0, 1]
        for m in model.cls:  # scores spread over (0, 1)
            m.weight.mul_(4.0)
            m.bias.fill_(score_bias)
    return model.eval()


def export_toy(path: Path, size: int | tuple[int, int] = SIZE, dynamic: bool = False, batch: int = 1,
               **toy: object) -> Path:  # fmt: skip
    """torch.onnx.export (TorchScript exporter, opset 17), IR pinned for onnxruntime."""
    import torch

    from edgepose.onnxkit.model import pin_ir_version

    h, w = (size, size) if isinstance(size, int) else size
    axes = {"images": {0: "batch", 2: "height", 3: "width"}, "output0": {0: "batch", 2: "anchors"}}
    torch.onnx.export(
        make_toy(**toy), (torch.zeros(batch, 3, h, w),), str(path), input_names=["images"],
        output_names=["output0"], opset_version=17, dynamo=False, dynamic_axes=axes if dynamic else None,
    )  # fmt: skip
    m = onnx.load(str(path))
    pin_ir_version(m)
    onnx.save(m, str(path))
    return path
