"""The detector's loss: FCOS target assignment (center sampling + per-level size ranges), then
focal loss + centerness BCE (``quality="centerness"``, FCOS) or quality focal loss against the
IoU (``quality="iou"``, GFL/NanoDet), and GIoU on the decoded boxes.

Targets per image: ``boxes`` float32 (K, 4) xyxy in input pixels (``boxes.to_input``) and
``classes`` int64 (K,); K may be 0.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torchvision.ops import generalized_box_iou_loss, sigmoid_focal_loss

from edgetl.tasks.detect.model import decode_boxes, flatten_levels, level_points

CENTER_RADIUS = 1.5  # strides around a box centre that may be positive (FCOS center sampling)
SIZE_PER_STRIDE = 8  # a level takes objects whose largest distance is <= 8 strides (64 px at s8)
BOX_WEIGHT = 2.0  # GIoU weight (NanoDet, GFL)


def size_ranges(strides: tuple[int, ...]) -> list[tuple[float, float]]:
    """(low, high] of max(l, t, r, b) per level; the top level takes everything larger."""
    highs = [SIZE_PER_STRIDE * s for s in strides[:-1]] + [float("inf")]
    lows = [0.0] + highs[:-1]
    return list(zip(lows, highs, strict=True))


def assign(
    points: torch.Tensor,
    strides: torch.Tensor,
    ranges: torch.Tensor,
    gt_boxes: torch.Tensor,
) -> torch.Tensor:
    """Index of the box each location learns (-1: background). A location is positive for a box
    when it lies inside the box and within CENTER_RADIUS strides of its centre, and the box's
    largest distance from it falls in the location's level range; ties go to the smallest box."""
    if len(gt_boxes) == 0:
        return torch.full((len(points),), -1, dtype=torch.long)
    x, y = points[:, 0:1], points[:, 1:2]  # (A, 1)
    x1, y1, x2, y2 = gt_boxes.T  # (K,)
    ltrb = torch.stack([x - x1, y - y1, x2 - x, y2 - y], -1)  # (A, K, 4)
    inside = ltrb.min(-1).values > 0
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    r = strides * CENTER_RADIUS
    near = ((x - cx).abs() < r) & ((y - cy).abs() < r)
    reach = ltrb.max(-1).values
    in_range = (reach > ranges[:, 0:1]) & (reach <= ranges[:, 1:2])
    area = ((x2 - x1) * (y2 - y1)).expand(len(points), -1)
    area = torch.where(inside & near & in_range, area, torch.full_like(area, float("inf")))
    best, idx = area.min(1)
    return torch.where(torch.isfinite(best), idx, torch.full_like(idx, -1))


def aligned_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """IoU of a[i] with b[i] (xyxy)."""
    lt, rb = torch.max(a[:, :2], b[:, :2]), torch.min(a[:, 2:], b[:, 2:])
    inter = (rb - lt).clamp(min=0).prod(1)
    union = (a[:, 2:] - a[:, :2]).clamp(min=0).prod(1) + (b[:, 2:] - b[:, :2]).prod(1) - inter
    return inter / union.clamp(min=1e-6)


def quality_focal_loss(logits: torch.Tensor, target: torch.Tensor, beta: float = 2.0) -> torch.Tensor:
    """GFL's QFL: BCE against a soft target (the IoU at the box's class, 0 elsewhere), scaled by
    |sigmoid - target| ** beta; summed."""
    p = logits.sigmoid()
    bce = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    return (bce * (p - target).abs().pow(beta)).sum()


def detection_loss(
    raw: dict, targets: list[tuple[torch.Tensor, torch.Tensor]], input_size: tuple[int, int]
) -> tuple[torch.Tensor, dict[str, float]]:
    """Raw detector outputs of a batch + per-image (boxes, classes) -> (total, parts), each part
    normalised by the batch's number of positive locations."""
    del input_size  # locations come from the feature maps' sizes and strides
    strides_t = raw["strides"]
    sizes = [tuple(m.shape[-2:]) for m in raw["cls"]]
    points, strides = level_points(sizes, strides_t)
    ranges = torch.cat(
        [torch.tensor([r]).expand(h * w, 2) for (h, w), r in zip(sizes, size_ranges(strides_t), strict=True)]
    )
    device = raw["cls"][0].device
    points, strides, ranges = points.to(device), strides.to(device), ranges.to(device)
    cls = flatten_levels(raw["cls"]).float()  # (N, A, C)
    reg = flatten_levels(raw["reg"]).float()
    ctr = flatten_levels(raw["ctr"]).float()[..., 0] if "ctr" in raw else None

    pos_idx, pos_gt, pos_cls = [], [], []
    for n, (gt_boxes, gt_classes) in enumerate(targets):
        gt_boxes = torch.as_tensor(gt_boxes, dtype=torch.float32, device=device).reshape(-1, 4)
        gt_classes = torch.as_tensor(gt_classes, dtype=torch.long, device=device).reshape(-1)
        which = assign(points, strides, ranges, gt_boxes)
        pos = torch.nonzero(which >= 0)[:, 0]
        pos_idx.append(torch.stack([torch.full_like(pos, n), pos], 1))
        pos_gt.append(gt_boxes[which[pos]])
        pos_cls.append(gt_classes[which[pos]])
    pos_idx, pos_gt, pos_cls = torch.cat(pos_idx), torch.cat(pos_gt), torch.cat(pos_cls)
    num_pos = max(1.0, float(len(pos_idx)))
    b, a = pos_idx[:, 0], pos_idx[:, 1]

    pred_boxes = decode_boxes(reg[b, a], points[a], strides[a])
    cls_target = torch.zeros_like(cls)
    parts = {}
    if len(pos_idx):
        iou = aligned_iou(pred_boxes.detach(), pos_gt)
        giou = generalized_box_iou_loss(pred_boxes, pos_gt, reduction="none")
    if ctr is None:  # quality iou: the class score is the IoU it will achieve
        if len(pos_idx):
            cls_target[b, a, pos_cls] = iou.clamp(min=0).to(cls_target.dtype)
            weight = cls[b, a].detach().sigmoid().max(1).values  # NanoDet weights boxes by confidence
            box = (giou * weight).sum() / weight.sum().clamp(min=1e-6)
        else:
            box = reg.sum() * 0
        parts["cls"] = quality_focal_loss(cls, cls_target) / num_pos
    else:  # centerness: focal loss on hard labels, centerness BCE, GIoU weighted by centerness
        if len(pos_idx):
            cls_target[b, a, pos_cls] = 1.0
            x, y = points[a, 0], points[a, 1]
            left, t = x - pos_gt[:, 0], y - pos_gt[:, 1]
            r, btm = pos_gt[:, 2] - x, pos_gt[:, 3] - y
            centerness = torch.sqrt(
                (torch.min(left, r) / torch.max(left, r)) * (torch.min(t, btm) / torch.max(t, btm))
            ).clamp(0, 1)
            box = (giou * centerness).sum() / centerness.sum().clamp(min=1e-6)
            parts["ctr"] = (
                F.binary_cross_entropy_with_logits(ctr[b, a], centerness, reduction="sum") / num_pos
            )
        else:
            box = reg.sum() * 0
            parts["ctr"] = ctr.sum() * 0
        parts["cls"] = sigmoid_focal_loss(cls, cls_target, reduction="sum") / num_pos
    parts["box"] = BOX_WEIGHT * box
    total = sum(parts.values())
    shown = {k: float(v.detach()) for k, v in parts.items()}
    shown["num_pos"] = float(len(pos_idx))
    return total, shown
