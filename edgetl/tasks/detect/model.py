"""The detector: a timm backbone (strides 8/16/32), a light neck and an anchor-free head.

``Detector.forward`` returns raw per-level outputs for the loss; ``DetectorExport`` wraps a
detector for a fixed input size and returns the named outputs ``boxes`` (N, A, 4) xyxy in input
pixels and ``scores`` (N, A, C) in [0, 1], decoded with Relu/Mul/Add/Sub/Sigmoid/Concat only
(anchor points are constants: static shapes, no data-dependent control flow). NMS stays on the
host (``postprocess``).

Default head, chosen by measurement (benchmarks/detect_head.py ->
benchmarks/results/detect_head.json; tf_efficientnet_lite0, 320 px, batch 1, one thread): a PAN
with depthwise convs, then per-level towers of depthwise-separable convs with BatchNorm (NanoDet's
cost: ONNX Runtime 9.7 ms median, PyTorch eager 32.9 ms), trained FCOS-style (focal loss +
centerness, ``quality="centerness"``). FCOS's own towers (shared 3x3 convs + GroupNorm,
``tower="gn"``) cost 16.5-17.5 ms in ONNX Runtime, 1.7-1.8x, and GroupNorm does not fold into the
convs; on a tiny synthetic set they generalise better (held-out recall@0.5 0.76-0.81 against
0.66, 3 seeds of 150 steps), so they stay an option. NanoDet's quality focal loss
(``quality="iou"``) had the same latency and recalled 0.60 with a wide spread over seeds. No
distribution (DFL) box branch: its decode needs a softmax and an integral over bins, beyond the
simple ops the exported decode keeps to.

For fine-tuning strategies the detector looks like ``EdgeClassifier``: ``backbone`` (grouped into
stages), ``head`` (neck + prediction layers, every parameter that is not backbone),
``num_stages``, ``stage_modules``, ``stage_parameters``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from edgetl.errors import ModelError
from edgetl.models.registry import StagedModel

STRIDES = (8, 16, 32)
PRIOR = 0.01  # initial foreground probability (RetinaNet/FCOS): keeps the first focal losses sane


@dataclass(frozen=True)
class DetectorConfig:
    architecture: str = "timm/tf_efficientnet_lite0"
    num_classes: int = 1
    neck: Literal["pan", "fpn"] = "pan"
    tower: Literal["dw", "gn"] = "dw"  # NanoDet depthwise per level, or FCOS GroupNorm shared
    quality: Literal["iou", "centerness"] = "centerness"  # focal + centerness, or QFL (GFL)
    width: int = 96  # neck and head channels
    depth: int = 2  # convs per head tower
    drop_rate: float = 0.0


def _conv_bn(cin: int, cout: int, k: int = 1, stride: int = 1, groups: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


def _dw_sep(c: int, stride: int = 1) -> nn.Sequential:
    """Depthwise 3x3 + pointwise 1x1 (MobileNet's separable conv)."""
    return nn.Sequential(_conv_bn(c, c, 3, stride, groups=c), _conv_bn(c, c, 1))


class PAN(nn.Module):
    """1x1 laterals to ``width``, top-down then bottom-up paths joined by addition, each merge
    followed by a depthwise-separable conv (PANet's shape, NanoDet-Plus's cost)."""

    def __init__(self, in_channels: list[int], width: int):
        super().__init__()
        n = len(in_channels)
        self.lateral = nn.ModuleList(_conv_bn(c, width) for c in in_channels)
        self.top_down = nn.ModuleList(_dw_sep(width) for _ in range(n - 1))
        self.down = nn.ModuleList(_conv_bn(width, width, 3, 2, groups=width) for _ in range(n - 1))
        self.bottom_up = nn.ModuleList(_dw_sep(width) for _ in range(n - 1))

    def forward(self, feats: list[torch.Tensor]) -> list[torch.Tensor]:
        x = [lat(f) for lat, f in zip(self.lateral, feats, strict=True)]
        for i in range(len(x) - 1, 0, -1):  # top-down
            up = F.interpolate(x[i], size=x[i - 1].shape[-2:], mode="nearest")
            x[i - 1] = self.top_down[i - 1](x[i - 1] + up)
        for i in range(len(x) - 1):  # bottom-up
            # stride 2, padding 1 gives ceil(H / 2): the size backbones give the next level
            x[i + 1] = self.bottom_up[i](x[i + 1] + self.down[i](x[i]))
        return x


class FPN(nn.Module):
    """torchvision's FeaturePyramidNetwork (laterals + 3x3 output convs), list in, list out."""

    def __init__(self, in_channels: list[int], width: int):
        super().__init__()
        from torchvision.ops import FeaturePyramidNetwork

        self.fpn = FeaturePyramidNetwork(in_channels, width)

    def forward(self, feats: list[torch.Tensor]) -> list[torch.Tensor]:
        out = self.fpn({str(i): f for i, f in enumerate(feats)})
        return list(out.values())


class AnchorFreeHead(nn.Module):
    """One location = one prediction: C class logits, 4 box distances (in strides, before ReLU)
    and, with ``centerness``, one centerness logit (FCOS).

    ``tower="dw"`` (NanoDet): per level (BatchNorm statistics differ between levels) one tower of
    depthwise-separable convs shared by classes and boxes, 1x1 outputs. ``tower="gn"`` (FCOS):
    class and box towers of full 3x3 convs with GroupNorm, shared over levels, 3x3 outputs.
    """

    def __init__(
        self,
        width: int,
        num_classes: int,
        depth: int,
        levels: int,
        tower: Literal["dw", "gn"] = "dw",
        centerness: bool = False,
    ):
        super().__init__()
        self.num_classes, self.tower, self.centerness = num_classes, tower, centerness
        outputs = num_classes + 4 + int(centerness)
        if tower == "dw":
            self.towers = nn.ModuleList(
                nn.Sequential(*(_dw_sep(width) for _ in range(depth))) for _ in range(levels)
            )
            self.pred = nn.ModuleList(nn.Conv2d(width, outputs, 1) for _ in range(levels))
            convs = list(self.pred)
        else:

            def stack() -> nn.Sequential:
                layers = []
                for _ in range(depth):
                    layers += [
                        nn.Conv2d(width, width, 3, padding=1),
                        nn.GroupNorm(math.gcd(16, width), width),
                        nn.ReLU(inplace=True),
                    ]
                return nn.Sequential(*layers)

            self.cls_tower, self.reg_tower = stack(), stack()
            self.cls = nn.Conv2d(width, num_classes, 3, padding=1)
            self.reg = nn.Conv2d(width, outputs - num_classes, 3, padding=1)
            convs = [self.cls, self.reg]
        for conv in convs:
            nn.init.normal_(conv.weight, std=0.01)
            nn.init.zeros_(conv.bias)
        prior = -math.log((1 - PRIOR) / PRIOR)
        if tower == "dw":
            for conv in self.pred:
                nn.init.constant_(conv.bias[:num_classes], prior)
                nn.init.constant_(conv.bias[num_classes : num_classes + 4], 1.0)  # one stride
        else:
            nn.init.constant_(self.cls.bias, prior)
            nn.init.constant_(self.reg.bias[:4], 1.0)

    def forward(self, feats: list[torch.Tensor]) -> dict[str, list[torch.Tensor]]:
        out: dict[str, list[torch.Tensor]] = {"cls": [], "reg": []}
        if self.centerness:
            out["ctr"] = []
        c = self.num_classes
        for i, f in enumerate(feats):
            if self.tower == "dw":
                y = self.pred[i](self.towers[i](f))
                cls, box = y[:, :c], y[:, c:]
            else:
                cls, box = self.cls(self.cls_tower(f)), self.reg(self.reg_tower(f))
            out["cls"].append(cls)
            out["reg"].append(box[:, :4])
            if self.centerness:
                out["ctr"].append(box[:, 4:])
        return out


class DetectHead(nn.Module):
    """Everything after the backbone (what strategies call the head): neck + prediction layers."""

    def __init__(self, neck: nn.Module, pred: nn.Module):
        super().__init__()
        self.neck = neck
        self.pred = pred

    def forward(self, feats: list[torch.Tensor]) -> dict:
        """Raw outputs from backbone maps (what a linear probe trains on cached features)."""
        return {**self.pred(self.neck(list(feats))), "strides": STRIDES}


class Detector(StagedModel):
    """backbone (image -> stride 8/16/32 maps) + head (neck + anchor-free prediction). ``forward``
    returns the raw outputs: ``cls`` and ``reg`` (and ``ctr`` for FCOS), one (N, ., H_l, W_l)
    tensor per level, plus ``strides``."""

    def __init__(
        self, backbone: nn.Module, head: DetectHead, stages: list[list[str]], config: DetectorConfig
    ):
        super().__init__(backbone, head, stages)
        self.config = config
        self.strides = STRIDES

    @property
    def neck(self) -> nn.Module:
        return self.head.neck

    @property
    def num_classes(self) -> int:
        return self.config.num_classes


# ------------------------------------------------------------------ decode (export-friendly)
def level_points(sizes: list[tuple[int, int]], strides: tuple[int, ...]) -> tuple[torch.Tensor, torch.Tensor]:
    """Location centres (A, 2) as (x, y) input pixels, and each location's stride (A, 1), level
    by level, row-major: the order of ``flatten_levels``."""
    pts, strd = [], []
    for (h, w), s in zip(sizes, strides, strict=True):
        ys, xs = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
        pts.append(torch.stack([xs, ys], -1).reshape(-1, 2).float().add(0.5).mul(s))
        strd.append(torch.full((h * w, 1), float(s)))
    return torch.cat(pts), torch.cat(strd)


def flatten_levels(maps: list[torch.Tensor], static: list[tuple[int, int]] | None = None) -> torch.Tensor:
    """Per-level (N, K, H, W) -> (N, A, K). ``static``: each level's (K, H * W) as Python ints,
    so that an export with a dynamic batch still declares A and K."""
    if static is None:
        return torch.cat([m.flatten(2) for m in maps], 2).permute(0, 2, 1)
    return torch.cat([m.reshape(-1, k, hw) for m, (k, hw) in zip(maps, static, strict=True)], 2).permute(
        0, 2, 1
    )


def decode_boxes(reg: torch.Tensor, points: torch.Tensor, strides: torch.Tensor) -> torch.Tensor:
    """Distances (N, A, 4: left, top, right, bottom in strides, before ReLU) -> xyxy pixels."""
    d = F.relu(reg) * strides
    return torch.cat([points - d[..., :2], points + d[..., 2:]], -1)


def scores_of(raw: dict, static: dict[str, list[tuple[int, int]]] | None = None) -> torch.Tensor:
    """(N, A, C) in [0, 1]: the class quality (quality iou) or class x centerness."""
    static = static or {}
    s = torch.sigmoid(flatten_levels(raw["cls"], static.get("cls")))
    if "ctr" in raw:
        s = s * torch.sigmoid(flatten_levels(raw["ctr"], static.get("ctr")))
    return s


class DetectorExport(nn.Module):
    """A detector at a fixed input size -> (boxes (N, A, 4), scores (N, A, C)), the named outputs."""

    output_names = ("boxes", "scores")

    def __init__(self, detector: Detector, input_size: tuple[int, int]):
        super().__init__()
        self.detector = detector
        self.input_size = tuple(input_size)
        with torch.no_grad():
            was = detector.training
            detector.eval()
            raw = detector(torch.zeros(1, 3, *input_size))
            detector.train(was)
        points, strides = level_points([tuple(m.shape[-2:]) for m in raw["cls"]], detector.strides)
        self.register_buffer("points", points, persistent=False)
        self.register_buffer("point_strides", strides, persistent=False)
        self.static = {
            k: [(int(m.shape[1]), int(m.shape[2] * m.shape[3])) for m in maps]
            for k, maps in raw.items()
            if k != "strides"
        }

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self._decoded(self.detector(x))

    def forward_features(self, feats) -> tuple[torch.Tensor, torch.Tensor]:
        """The same named outputs from the backbone's maps (cached linear-probe features)."""
        return self._decoded(self.detector.head(feats))

    def _decoded(self, raw: dict) -> tuple[torch.Tensor, torch.Tensor]:
        reg = flatten_levels(raw["reg"], self.static["reg"])
        return decode_boxes(reg, self.points, self.point_strides), scores_of(raw, self.static)


# ------------------------------------------------------------------ building
def _backbone(
    architecture: str, pretrained: bool, drop_rate: float, weights: Path | None = None
) -> tuple[nn.Module, list[list[str]], str]:
    """A timm ``features_only`` backbone at strides 8/16/32 with the weights ``build_model`` would
    give the classifier (a weights file, else the offline package, else the hub), and its stages."""
    import timm

    from edgetl.models.registry import load_weights_file, parse_arch, stage_names, timm_backbone

    family, name = parse_arch(architecture)
    if family != "timm":
        raise ModelError(f"detector backbone {architecture!r}: only timm/<name> backbones are supported.")
    full, origin = timm_backbone(name, pretrained and weights is None, drop_rate)
    if weights is not None:
        load_weights_file(full, Path(weights), family, architecture)
        origin = f"weights file {Path(weights).name}"
    reductions = [f["reduction"] for f in full.feature_info]
    if not set(STRIDES) <= set(reductions):
        raise ModelError(f"timm/{name} has feature strides {reductions}; a detector needs {list(STRIDES)}.")
    # the last feature at each stride (timm lists one per stage)
    indices = tuple(max(i for i, r in enumerate(reductions) if r == s) for s in STRIDES)
    features = timm.create_model(name, pretrained=False, features_only=True, out_indices=indices)
    source, target = full.state_dict(), features.state_dict()
    missing = [k for k in target if k not in source or source[k].shape != target[k].shape]
    if missing:
        raise ModelError(f"timm/{name}: feature extractor tensors {missing[:3]} have no match in the model.")
    features.load_state_dict({k: source[k] for k in target}, strict=True)
    named = dict(features.named_modules())
    stages = [[n for n in stage if n in named] for stage in stage_names(family, name, full)]
    return features, [s for s in stages if s], origin


def build_detector(
    config: DetectorConfig, pretrained: bool = False, weights: Path | None = None
) -> tuple[Detector, str]:
    """The detector of ``config``; returns it and a note on where its backbone weights came from
    (``weights``: a classifier's weights file, as ``build_model`` reads it)."""
    backbone, stages, origin = _backbone(config.architecture, pretrained, config.drop_rate, weights)
    channels = list(backbone.feature_info.channels())
    neck = (PAN if config.neck == "pan" else FPN)(channels, config.width)
    pred = AnchorFreeHead(
        config.width,
        config.num_classes,
        config.depth,
        len(STRIDES),
        config.tower,
        config.quality == "centerness",
    )
    return Detector(backbone, DetectHead(neck, pred), stages, config), origin
