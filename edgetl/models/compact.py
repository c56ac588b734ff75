"""edgetl's own compact CNN: plain Conv-BN-ReLU blocks, no squeeze-excite, no hard-swish,
no depthwise convs: every op INT8 runtimes fuse well (a student built for quantization)."""

from __future__ import annotations

from dataclasses import dataclass

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
    """stem (stride ``stem_stride``) + one stage per width (stride 2 each) + global average pool
    -> features (width[-1])."""

    def __init__(
        self, widths: tuple[int, ...] = (24, 48, 96, 192), drop_rate: float = 0.0, stem_stride: int = 1
    ):
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(3, widths[0], 3, stem_stride, 1, bias=False),
            nn.BatchNorm2d(widths[0]),
            nn.ReLU(inplace=True),
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


@dataclass(frozen=True)
class CompactSpec:
    """One registered shape: stage widths and the stem's stride."""

    widths: tuple[int, ...]
    stem_stride: int = 1

    def build(self, drop_rate: float = 0.0) -> CompactCNN:
        return CompactCNN(self.widths, drop_rate, self.stem_stride)


# A stride-2 stem halves the resolution before the first block: at 28-32 px that is ~3x less
# time per call for the same widths, most of it spent at full resolution (benchmarks/student_speed.py).
COMPACT = {
    "compact_cnn": CompactSpec((24, 48, 96, 192)),
    "compact_cnn_s": CompactSpec((16, 32, 64, 128)),
    "compact_cnn_s2": CompactSpec((16, 32, 64, 128), stem_stride=2),
    "compact_cnn_m2": CompactSpec((24, 48, 96, 192), stem_stride=2),
}
