"""Engine cache keys, the engine inspector summary and the DLA placement read from the builder log."""

from __future__ import annotations

import json

from edgetl.gpu.cache import KEY_LENGTH, engine_cache_key, matching_engine
from edgetl.gpu.engine_report import dla_placement, layer_precision, summarize_engine_json

BASE = dict(
    onnx_sha256="a" * 64,
    tensorrt_version="10.3.0.30",
    gpu_name="Orin",
    compute_capability="8.7",
    options={"precision": "fp16", "max_batch": 8, "dla_core": None},
)


def key(**change):
    args = {**BASE, **change}
    return engine_cache_key(**args)


def test_key_is_stable_and_short():
    assert key() == key()
    assert len(key()) == KEY_LENGTH and int(key(), 16) >= 0
    reordered = dict(reversed(list(BASE["options"].items())))
    assert key(options=reordered) == key()  # option order does not matter


def test_every_input_changes_the_key():
    changed = [
        key(onnx_sha256="b" * 64),
        key(tensorrt_version="10.3.0.31"),
        key(gpu_name="NVIDIA H100"),
        key(compute_capability="9.0"),
        key(options={**BASE["options"], "precision": "int8"}),
        key(options={**BASE["options"], "max_batch": 16}),
        key(options={**BASE["options"], "dla_core": 0}),
    ]
    assert len({key(), *changed}) == len(changed) + 1


def test_matching_engine_needs_key_and_unchanged_file():
    info = {"cache_key": "k1", "engine_sha256": "s1"}
    assert matching_engine(info, "k1", "s1")
    assert not matching_engine(info, "k2", "s1")  # other build options / GPU / TensorRT
    assert not matching_engine(info, "k1", "s2")  # the engine file was replaced since
    assert not matching_engine({}, "k1", "s1")  # an old sidecar without a key


# a hand-written sample in TensorRT 10.x's documented inspector layout (Polygraphy and
# trt-engine-explorer read the same keys); the values are illustrative, not from a real engine
SAMPLE_10X = {
    "Layers": [
        {
            "Name": "conv1 + relu",
            "LayerType": "CaskConvolution",
            "Inputs": [{"Name": "input", "Format/Datatype": "Row major linear FP32"}],
            "Outputs": [
                {"Name": "t1", "Format/Datatype": "Channel major FP16 format where channel % 8 == 0"}
            ],
        },
        {
            "Name": "quantized conv",
            "LayerType": "CaskConvolution",
            "Inputs": [
                {"Name": "t1q", "Format/Datatype": "Thirty-two wide channel vectorized row major Int8"}
            ],
            "Outputs": [{"Name": "t2", "Format/Datatype": "Int8"}],
        },
        {
            "Name": "fc",
            "LayerType": "CaskGemm",
            "Inputs": [{"Name": "t2", "Format/Datatype": "Half"}],
            "Outputs": [{"Name": "logits", "Format/Datatype": "Float"}],
        },
    ],
    "Bindings": ["input", "logits"],
}


def test_engine_json_summary():
    summary = summarize_engine_json(json.dumps(SAMPLE_10X))
    assert summary == {
        "layers": 3,
        "layer_precisions": {"fp16": 1, "fp32": 1, "int8": 1},
        "contains": ["fp16", "fp32", "int8"],
    }


def test_split_type_keys_and_name_only_layers():
    # 11.x splits format and data type; without DETAILED verbosity layers are bare names
    assert layer_precision({"Inputs": [{"Format": "Linear", "DataType": "FP16"}]}) == "fp16"
    summary = summarize_engine_json(json.dumps({"Layers": ["conv1", "fc"]}))
    assert summary["layer_precisions"] == {"unknown": 2} and summary["contains"] == []


def test_dla_placement_from_builder_log():
    lines = [
        "---------- Layers Running on DLA ----------",
        "[DlaLayer] {ForeignNode[/backbone/conv_stem/Conv.../backbone/blocks/blocks.6/Mul]}",
        "---------- Layers Running on GPU ----------",
        "[GpuLayer] POOLING: /global_pool/GlobalAveragePool",
        "[GpuLayer] CONSTANT: head.weight",
        "Engine generation completed in 12.3 seconds.",
    ]
    placed = dla_placement(lines)
    assert len(placed["dla"]) == 1 and placed["dla"][0].startswith("{ForeignNode")
    assert placed["gpu"] == ["POOLING: /global_pool/GlobalAveragePool", "CONSTANT: head.weight"]
