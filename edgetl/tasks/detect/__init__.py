"""Object detection: boxes (xyxy, input pixels) and per-class scores out, decoded by one host NMS."""
