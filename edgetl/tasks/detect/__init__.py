"""Object detection: boxes and classes per image, COCO mAP@[.5:.95] as the primary metric.

Data side: ``targets`` (the per-image target), ``sources`` (COCO JSON, YOLO txt, Pascal VOC XML
and the built-in synthetic set), ``splits`` (seeded splits stratified by the classes present),
``metrics`` (COCO mAP through faster-coco-eval, resampled by image for confidence intervals).
Model side: ``model`` (timm backbone, PAN neck, anchor-free head; boxes xyxy in input pixels and
per-class scores out), ``loss``, ``postprocess`` (the one host NMS), ``boxes`` (input <-> original
image coordinates through the preprocessing contract).
"""
