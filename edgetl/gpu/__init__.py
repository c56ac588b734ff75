"""The GPU room: building TensorRT engines (``engine``: ``edgetl build``) and the helpers that need
neither torch nor TensorRT to import: the TensorRT build plan (which precision flags / typing a
TensorRT version needs), engine cache keys, the engine inspector's summary, FP16 conversion and
the cuda-python runtime wrapper."""
