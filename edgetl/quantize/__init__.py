"""INT8 post-training quantization: calibration sets, QDQ flavours, accuracy budget, speed gate."""
