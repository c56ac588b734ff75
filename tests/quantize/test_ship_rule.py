"""The speed gate's ship rule: a pure function of the measurements (faster / slower / tied),
used by `edgetl quantize` and the pipeline's ship decision alike."""

import itertools

import pytest

from edgetl.quantize.speed_gate import decide, pace

BASE = dict(fp32_score=0.90, int8_score=0.90, within_budget=True, fp32_bytes=4000, int8_bytes=1000)


@pytest.mark.parametrize(
    ("ci", "expected"),
    [((1.2, 1.5), "faster"), ((0.7, 0.95), "slower"), ((0.9, 1.1), "tied"), ((1.0, 1.3), "tied")],
)
def test_pace_is_where_the_interval_lies(ci, expected):
    assert pace(ci) == expected


def test_prefer_fastest():
    assert decide(ci95=(1.2, 1.5), prefer="fastest", **BASE).ship_int8
    slower = decide(ci95=(0.7, 0.9), prefer="fastest", **BASE)
    assert not slower.ship_int8 and "SLOWER" in slower.reason and "GPU/Jetson" in slower.reason
    assert decide(ci95=(0.7, 0.9), prefer="int8", **BASE).ship_int8


def test_a_tie_ships_the_better_val_top1_then_the_smaller_file():
    tie = (0.9, 1.1)
    better_int8 = decide(ci95=tie, prefer="fastest", **{**BASE, "int8_score": 0.91})
    assert better_int8.ship_int8 and better_int8.pace == "tied" and "tied" in better_int8.reason
    assert not decide(ci95=tie, prefer="fastest", **{**BASE, "int8_score": 0.89}).ship_int8
    # INT8 more accurate but outside the budget: FP32
    assert not decide(
        ci95=tie, prefer="fastest", **{**BASE, "int8_score": 0.91, "within_budget": False}
    ).ship_int8
    equal = decide(ci95=tie, prefer="fastest", **BASE)
    assert equal.ship_int8 and "smaller file" in equal.reason
    assert not decide(ci95=tie, prefer="fastest", **{**BASE, "int8_bytes": 5000}).ship_int8


def test_target_runtime_ships_int8_whatever_the_cpu_says():
    assert decide(ci95=(0.5, 0.6), prefer="fastest", cpu_timing_predicts=False, **BASE).ship_int8


def test_the_same_measurements_always_give_the_same_decision():
    grid = itertools.product(
        [(0.7, 0.9), (0.9, 1.1), (1.1, 1.3)], [0.89, 0.90, 0.91], [True, False], ["int8", "fastest"]
    )
    for ci, top1, ok, prefer in grid:
        args = dict(BASE, int8_score=top1, within_budget=ok)
        assert decide(ci95=ci, prefer=prefer, **args) == decide(ci95=ci, prefer=prefer, **args)


def _report(**fields):
    """A quantize report with the given fields (the gate timed 6 rounds; the rest as measured)."""
    from edgetl.quantize.report import QuantizeReport

    timing = {"fp32": {"p50_ms": 1.0, "rounds_ms": [1.0] * 6}, "int8": {"p50_ms": 1.0}}
    return QuantizeReport.model_validate({"val_images": 200, "shipped": "int8", "latency": timing, **fields})


def test_pipeline_ship_decision_says_tied(tmp_path):
    from edgetl.pipeline.ship import choose
    from edgetl.stages.base import Form, role

    ckpt, fp32, int8 = tmp_path / "s.safetensors", tmp_path / "student.onnx", tmp_path / "student.int8.onnx"
    for path, size in ((ckpt, 10), (fp32, 4000), (int8, 1000)):  # only their sizes are read
        path.write_bytes(b"x" * size)
    artifacts = {
        role("student", Form.CHECKPOINT): ckpt,
        role("student", Form.ONNX): fp32,
        role("student", Form.ONNX_INT8): int8,
    }
    report = {
        "int8_speedup": 1.01,
        "int8_speedup_ci95": [0.92, 1.08],
        "fp32": {"top1": 0.930},
        "int8": {"top1": 0.925},
        "drop_pt": 0.5,
        "within_budget": True,
    }
    s = choose(artifacts, {"cpu": _report(**report)}, "fastest")
    assert s.shipped == role("student", Form.ONNX)
    assert "tied" in s.reasons[role("student", Form.ONNX_INT8)]
    s2 = choose(artifacts, {"cpu": _report(**{**report, "int8": {"top1": 0.930}})}, "fastest")
    assert s2.shipped == role("student", Form.ONNX_INT8) and "smaller file" in s2.reasons[s2.shipped]


def _ship_artifacts(tmp_path):
    from edgetl.stages.base import Form, role

    ckpt, fp32, int8 = tmp_path / "s.safetensors", tmp_path / "student.onnx", tmp_path / "student.int8.onnx"
    for path, size in ((ckpt, 10), (fp32, 4000), (int8, 1000)):
        path.write_bytes(b"x" * size)
    return {
        role("student", Form.CHECKPOINT): ckpt,
        role("student", Form.ONNX): fp32,
        role("student", Form.ONNX_INT8): int8,
    }


GATE = {
    "int8_speedup": 1.06,
    "int8_speedup_ci95": [1.01, 1.10],
    "speed": "faster",
    "fp32": {"top1": 0.930},
    "int8": {"top1": 0.925},
    "drop_pt": 0.5,
    "within_budget": True,
}


def test_the_ship_reason_names_the_prefer_the_user_wrote_and_the_measurement(tmp_path):
    from edgetl.pipeline.ship import choose
    from edgetl.stages.base import Form, role

    s = choose(_ship_artifacts(tmp_path), {"cpu": _report(**GATE)}, "fastest")
    why = s.reasons[role("student", Form.ONNX_INT8)]
    assert s.shipped == role("student", Form.ONNX_INT8)
    assert "prefer: fastest" in why and "prefer: int8" not in why
    assert "speed gate measured INT8 1.06x" in why and "6 rounds" in why


def test_no_int8_ships_slower_than_its_fp32_whatever_prefer_says(tmp_path):
    """The pipeline's rule: prefer int8 ships a tied or faster INT8, never a measurably slower one
    (``edgetl quantize --prefer int8`` alone still writes it, as asked)."""
    from edgetl.pipeline.ship import choose
    from edgetl.stages.base import Form, role

    slower = {**GATE, "int8_speedup": 0.66, "int8_speedup_ci95": [0.60, 0.71], "speed": "slower"}
    for prefer in ("int8", "fastest"):
        s = choose(_ship_artifacts(tmp_path), {"cpu": _report(**slower)}, prefer)
        assert s.shipped == role("student", Form.ONNX), prefer
        assert "SLOWER" in s.reasons[role("student", Form.ONNX_INT8)]
    tied = {**GATE, "int8_speedup": 0.98, "int8_speedup_ci95": [0.90, 1.05], "speed": "tied"}
    assert choose(_ship_artifacts(tmp_path), {"cpu": _report(**tied)}, "int8").shipped == role(
        "student", Form.ONNX_INT8
    )
    assert decide(ci95=(0.6, 0.7), prefer="int8", **BASE).ship_int8  # quantize's own rule: as asked
    assert not decide(ci95=(0.6, 0.7), prefer="int8", never_slower=True, **BASE).ship_int8
    # a TensorRT-flavour file is for the device: CPU timing does not decide it
    assert decide(
        ci95=(0.6, 0.7), prefer="int8", never_slower=True, cpu_timing_predicts=False, **BASE
    ).ship_int8


def test_the_report_says_when_gate_and_bench_disagree_and_which_decided():
    from edgetl.pipeline.ship import speed_agreement

    gate = _report(**GATE)
    note = speed_agreement(gate, {"onnxruntime": 0.90, "openvino": 1.2})
    assert "disagree" in note and "0.90x" in note and "1.06x" in note
    assert "ship decision used the speed gate's measurement" in note
    assert "agrees" in speed_agreement(gate, {"onnxruntime": 1.05})
    # outside the gate's interval but a few percent off and on the same side of 1x: one verdict
    near = speed_agreement(
        _report(**{**GATE, "int8_speedup": 1.39, "int8_speedup_ci95": [1.39, 1.40]}), {"onnxruntime": 1.37}
    )
    assert "within 10%" in near and "disagree" not in near
    # a gap across 1x is a disagreement however small
    across = speed_agreement(
        _report(**{**GATE, "int8_speedup": 1.02, "int8_speedup_ci95": [1.01, 1.03]}), {"onnxruntime": 0.99}
    )
    assert "disagree" in across
    assert (
        speed_agreement(gate, {"openvino": 1.2}) is None and speed_agreement(None, {"onnxruntime": 1}) is None
    )


def test_the_pipeline_quantize_job_keeps_the_users_prefer(tmp_path):
    from types import SimpleNamespace

    from edgetl.stages import quantize
    from edgetl.stages.base import Form, role

    src = tmp_path / "student.onnx"
    context = SimpleNamespace(
        deployable=lambda: "student", artifacts={role("student", Form.ONNX): src}, run_dir=tmp_path
    )
    settings = quantize.STAGE.settings_model()(prefer="fastest")
    jobs = quantize.jobs(context, settings)
    assert jobs and all(j.config.prefer == "fastest" for j in jobs)
    assert all(j.run_kwargs["candidate"] for j in jobs)


@pytest.mark.parametrize(
    ("pace", "speedup", "lead"),
    [
        ("tied", 0.98, "INT8 and FP32 are tied"),
        ("slower", 0.8, "INT8 is SLOWER"),
        ("faster", 1.3, "INT8 is faster"),
    ],
)
def test_the_verdict_leads_with_the_interval_not_the_ratio(pace, speedup, lead):
    from edgetl.quantize.speed_gate import verdict_text

    text = verdict_text(pace, speedup, (0.9, 1.1), batch=1, threads=2, p50_ms=(0.1, 0.1), rounds=6)
    assert text.startswith(lead) and f"({speedup:.2f}x, 95% CI 0.90-1.10x" in text
    if pace == "tied":
        assert "SLOWER" not in text and "faster" not in text


def test_shipped_nncf_int8_names_its_file_per_runtime(tmp_path):
    """--engine nncf writes ONNX Runtime's placement and NNCF's own: the ship reason and
    ``runtime_files`` say which file goes to which runtime (one file for both: nothing extra)."""
    from edgetl.pipeline.ship import choose
    from edgetl.stages.base import Form, role

    ckpt, fp32, int8 = tmp_path / "s.safetensors", tmp_path / "student.onnx", tmp_path / "student.int8.onnx"
    for path, size in ((ckpt, 10), (fp32, 4000), (int8, 1000)):  # only their sizes are read
        path.write_bytes(b"x" * size)
    artifacts = {
        role("student", Form.CHECKPOINT): ckpt,
        role("student", Form.ONNX): fp32,
        role("student", Form.ONNX_INT8): int8,
    }
    ov = str(tmp_path / "student.int8.openvino.onnx")
    report = {
        "int8_speedup": 2.0,
        "int8_speedup_ci95": [1.8, 2.2],
        "fp32": {"top1": 0.93},
        "int8": {"top1": 0.925},
        "drop_pt": 0.5,
        "runtime_files": {"onnxruntime": str(int8), "openvino": ov},
        "openvino_file": {"top1": 0.927, "drop_pt": 0.3, "drop_ci95_pt": [-0.2, 0.8]},
    }
    s = choose(artifacts, {"cpu": _report(**report)}, "fastest")
    why = s.reasons[role("student", Form.ONNX_INT8)]
    assert s.shipped == role("student", Form.ONNX_INT8)
    assert s.runtime_files == {"onnxruntime": str(int8), "openvino": ov}
    assert f"on OpenVINO deploy {ov}" in why and "+0.30 pt" in why
    same = {**report, "runtime_files": {"onnxruntime": str(int8), "openvino": str(int8)}}
    s = choose(artifacts, {"cpu": _report(**same)}, "fastest")
    assert s.runtime_files == {} and "OpenVINO" not in s.reasons[s.shipped]


def test_the_openvino_file_is_named_by_its_placement_and_old_reports_mean_nncfs():
    """--speed-aware may give OpenVINO the all-INT8 file; a report from before says nothing of its
    placement, which was NNCF's own then, and reads back without the key."""
    from edgetl.pipeline.ship import runtime_note

    files = {"onnxruntime": "m.int8.onnx", "openvino": "m.int8.openvino.onnx"}
    ov = {"top1": 0.927, "drop_pt": 0.3, "drop_ci95_pt": [0.0, 0.6]}
    old = _report(**GATE, runtime_files=files, openvino_file=ov)
    assert "m.int8.openvino.onnx (NNCF's own placement, val drop +0.30 pt)" in runtime_note(old)
    assert "placement" not in old.to_json()["openvino_file"]
    aware = _report(**GATE, runtime_files=files, openvino_file={**ov, "placement": "all-INT8, faster there"})
    assert "(all-INT8, faster there, val drop +0.30 pt)" in runtime_note(aware)
    assert old.speed_aware is None and "speed_aware" not in old.to_json()


def test_gate_round_seconds_come_from_the_environment_and_bad_values_are_named(monkeypatch):
    from edgetl.errors import ConfigError
    from edgetl.quantize.latency import ROUND_SECONDS, round_seconds, rounds_text

    monkeypatch.delenv("EDGETL_GATE_ROUND_SECONDS", raising=False)
    assert round_seconds() == ROUND_SECONDS and rounds_text(12) == "12 interleaved rounds"
    monkeypatch.setenv("EDGETL_GATE_ROUND_SECONDS", "0.05")
    assert round_seconds() == 0.05
    assert rounds_text(12) == "12 interleaved rounds of 0.05 s per file (EDGETL_GATE_ROUND_SECONDS)"
    for bad in ("0", "-1", "fast"):
        monkeypatch.setenv("EDGETL_GATE_ROUND_SECONDS", bad)
        with pytest.raises(ConfigError, match=f"EDGETL_GATE_ROUND_SECONDS='{bad}'"):
            round_seconds()
