"""edgetl's own compact CNN: plain Conv-BN-ReLU blocks, no squeeze-excite, no hard-swish,
no depthwise convs: every op INT8 runtimes fuse well (a student built for quantization)."""

from __future__ import annotations

from torch import nn


def _block(cin: int, cout: int, stride: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride, 1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
        nn.Conv2d(cout, cout, 3, 1, 1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


class CompactCNN(nn.Module):
    """stem + 4 stages (stride 2 each) + global average pool -> features (width[-1])."""

    def __init__(self, widths: tuple[int, ...] = (24, 48, 96, 192), drop_rate: float = 0.0):
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(3, widths[0], 3, 1, 1, bias=False), nn.BatchNorm2d(widths[0]), nn.ReLU(inplace=True)
        )
        stages, cin = [], widths[0]
        for w in widths:
            stages.append(_block(cin, w, 2))
            cin = w
        self.stages = nn.Sequential(*stages)
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(drop_rate))
        self.num_features = cin

    def forward(self, x):
        return self.pool(self.stages(self.stem(x)))


COMPACT = {
    "compact_cnn": (24, 48, 96, 192),
    "compact_cnn_s": (16, 32, 64, 128),
}
