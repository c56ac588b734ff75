"""edgetl: pretrained backbone -> fine-tuned teacher -> student -> ONNX -> INT8 -> engine."""

__version__ = "0.1.0"
