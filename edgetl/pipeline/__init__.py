"""The whole chain from one config: finetune -> distill -> export -> quantize -> build -> eval ->
bench -> report, with content-hash skipping of unchanged stages."""
