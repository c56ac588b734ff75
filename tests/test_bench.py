import csv
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from edgetl.bench.config import BenchConfig
from edgetl.bench.contention import ContentionMeter
from edgetl.bench.measure import latency_stats, time_calls
from edgetl.bench.outputs import bench_report, write_outputs
from edgetl.bench.results import BenchResult, Contention
from edgetl.bench.run import bench
from edgetl.bench.timing import add_paired_speedups, stability, warnings_for
from edgetl.runners.registry import available_backends, make_runner


def test_latency_stats_by_hand():
    ms = np.array([1.0, 2.0, 3.0, 4.0, 100.0])
    s = latency_stats(ms, batch=2)
    assert s["p50_ms"] == 3.0 and s["min_ms"] == 1.0 and s["runs"] == 5
    assert s["mean_ms"] == pytest.approx(22.0) and s["throughput_img_s"] == pytest.approx(2e3 / 22.0)
    lo, hi = s["p50_ci95_ms"]
    assert lo <= 3.0 <= hi
    assert s["p99_ms"] > s["p90_ms"] > s["p50_ms"]


def test_time_calls_meets_both_minimums():
    calls = []
    ms = time_calls(lambda: calls.append(1), warmup=3, min_runs=20, min_seconds=0.05, max_seconds=5)
    assert len(ms) >= 20 and len(calls) == len(ms) + 3 and (ms >= 0).all()


def test_stability_by_segments_and_rounds():
    one = stability([np.array([1.0] * 12 + [2.0] * 8)])  # a slow phase in the second half
    assert one["by"] == "segment" and len(one["p50_ms"]) == 5 and one["spread"] == pytest.approx(1.0)
    three = stability([np.full(5, 1.0), np.full(5, 1.1), np.full(5, 1.0)])
    assert three["by"] == "round" and three["p50_ms"] == [1.0, 1.1, 1.0]
    assert three["spread"] == pytest.approx(0.1)


def _result(artifact="a/m.onnx", backend="onnxruntime", rounds=(np.ones(9),), **over) -> BenchResult:
    """A BenchResult with real stats of the given rounds' samples."""
    return BenchResult(
        artifact=artifact,
        kind="onnx",
        backend=backend,
        batch=1,
        threads=None,
        compute=latency_stats(np.concatenate(rounds), 1),
        stability=stability(list(rounds)),
        **over,
    )


def test_warnings_name_the_unsteady_result_and_the_contention():
    steady = _result()
    drifted = _result(rounds=(np.full(5, 1.0), np.full(5, 1.5)))
    assert warnings_for([steady], Contention(others_cpu_pct=0.0, steal_pct=0.0)) == []
    (w,) = warnings_for([steady, drifted], Contention())
    assert "m.onnx on onnxruntime" in w and "40%" in w and "interleaved" in w
    worse = _result(backend="openvino", rounds=(np.full(5, 1.0), np.full(5, 2.0)))
    (w,) = warnings_for([steady, drifted, worse], Contention())  # several: one line, the worst named
    assert "2 of 3 results moved more than 10%" in w and "up to 67% (m.onnx on openvino" in w
    got = warnings_for([steady], Contention(others_cpu_pct=48.0, steal_pct=7.0))
    assert "48%" in got[0] and "stole 7%" in got[1]


@pytest.mark.skipif(not os.path.exists("/proc/stat"), reason="reads Linux /proc/stat")
def test_contention_meter_sees_another_busy_process():
    """A real spinning child counts as others' CPU. On a busy machine others only grow, so the
    lower bound holds whatever else runs (we sleep meanwhile)."""
    import time

    busy = subprocess.Popen(
        [sys.executable, "-c", "import time\nt=time.time()\nwhile time.time()-t<1.5: pass"]
    )
    try:
        time.sleep(0.2)
        with ContentionMeter() as meter:
            time.sleep(1.0)  # we idle; the child spins one CPU
    finally:
        busy.wait()
    share = 100 / (os.cpu_count() or 1)  # one busy CPU, as a share of all of them
    assert meter.result["others_cpu_pct"] >= 0.6 * share, meter.result


def _stat_line(user: int, idle: int, steal: int) -> str:
    # cpu user nice system idle iowait irq softirq steal
    return f"cpu {user} 0 0 {idle} 0 0 0 {steal}\n"


def test_contention_meter_counts_others_not_our_own_work(tmp_path):
    """Deterministic: /proc/stat replaced by a file we write, so how busy this machine really
    is cannot change the answer. Our own CPU time inside the block is subtracted."""
    hz = os.sysconf("SC_CLK_TCK")
    stat = tmp_path / "stat"
    stat.write_text(_stat_line(0, 0, 0))
    with ContentionMeter(stat) as mine:
        t0 = os.times()
        sum(i * i for i in range(1_500_000))  # our own work
        ours = sum(os.times()[:2]) - sum(t0[:2])
        # 100 s of CPU time passed on all CPUs; the busy part is exactly our own work
        stat.write_text(_stat_line(round(ours * hz), 100 * hz - round(ours * hz), 0))
    assert mine.result["others_cpu_pct"] < 0.5, mine.result
    stat.write_text(_stat_line(0, 0, 0))
    with ContentionMeter(stat) as others:
        stat.write_text(_stat_line(30 * hz, 60 * hz, 10 * hz))  # someone else: 30 of 100 s, steal 10
    assert others.result == {"others_cpu_pct": pytest.approx(30.0, abs=0.5), "steal_pct": 10.0}


def test_paired_speedup_cancels_drift_shared_by_a_round():
    res = [_result(f"x/{a}.onnx", b) for a in ("fp32", "int8") for b in ("ort", "ov")]
    # round 2 is twice as slow for everyone (machine drift); int8 is 2x (ort) / 4x (ov) faster
    rounds = [[1.0, 2.0, 8.0], [1.2, 2.4, 9.6], [0.5, 1.0, 4.0], [0.3, 0.6, 2.4]]
    res = add_paired_speedups(res, rounds)
    assert res[0].speedup is None
    assert res[1].speedup.reference == "fp32.onnx on ort"  # first on its backend: vs the first
    assert res[1].speedup.paired_median == pytest.approx(1 / 1.2)
    assert res[2].speedup.model_dump() == {"reference": "fp32.onnx on ort", "paired_median": 2.0, "rounds": 3}
    assert res[3].speedup.reference == "fp32.onnx on ov"
    assert res[3].speedup.paired_median == pytest.approx(4.0)


def test_rounds_interleave_and_pool_every_sample(tiny_checkpoint, tiny_onnx):
    cfg = BenchConfig(
        artifacts=(tiny_checkpoint, tiny_onnx),
        backends=("torch", "onnxruntime"),
        threads=1,
        warmup=1,
        warmup_seconds=0,
        min_runs=7,
        min_seconds=0,
        rounds=3,
        end_to_end=False,
    )
    ref, r = bench(cfg).results
    assert r.stability.by == "round" and len(r.stability.p50_ms) == 3
    assert r.compute.runs == 21
    # no onnx artifact on torch, so the reference is the first result at this batch
    assert r.speedup.reference == f"{tiny_checkpoint.name} on torch" and r.speedup.rounds == 3
    assert r.speedup.paired_median > 0 and ref.speedup is None


def test_bench_every_backend_and_outputs(tiny_checkpoint, tiny_onnx, tmp_path):
    cfg = BenchConfig(
        artifacts=(tiny_checkpoint, tiny_onnx),
        batches=(1, 4),
        threads=1,
        min_runs=5,
        min_seconds=0.05,
        warmup=2,
    )
    run = bench(cfg)
    got = {(r.kind, r.backend, r.batch) for r in run.results}
    assert ("checkpoint", "torch", 4) in got and ("onnx", "onnxruntime", 1) in got
    if available_backends()["openvino"] is None:
        assert ("onnx", "openvino", 4) in got
        ov = next(r for r in run.results if r.backend == "openvino")
        # OpenVINO's own per-call timing excludes the Python call, so it is never above ours
        assert 0 < ov.backend_reported.p50_ms <= ov.compute.p50_ms
    assert all(r.backend_reported is None for r in run.results if r.backend != "openvino")
    r = run.results[0]
    assert r.end_to_end.p50_ms > 0 and r.compute.runs >= 5
    env = run.environment
    assert env.threads == 1 and "torch" in env.versions and env.cpu
    report = bench_report(run, "edgetl bench", {str(tiny_checkpoint): 0.9, str(tiny_onnx): 0.9})
    paths = write_outputs(report, tmp_path)
    rows = list(csv.DictReader(paths["csv"].read_text().splitlines()))
    assert len(rows) == len(run.results) and float(rows[0]["p50_ms"]) > 0
    saved = json.loads(paths["json"].read_text())
    assert saved["accuracy"][str(tiny_onnx)] == 0.9 and saved["accuracy_metric"]["key"] == "top1"
    assert paths["png"].read_bytes()[:4] == b"\x89PNG"
    assert float(rows[0]["p50_spread"]) >= 0 and r.stability.by == "segment"
    assert set(saved["contention"]) == {"others_cpu_pct", "steal_pct"} and isinstance(saved["warnings"], list)
    # unset fields stay out of the file: a compute-only key is absent, not null
    assert all("speedup" not in row for row in saved["results"]) and saved["results"][0]["threads"] == 1


def test_backend_that_cannot_run_a_kind_is_skipped_with_reason(tiny_onnx):
    report = bench(
        BenchConfig(
            artifacts=(tiny_onnx,),
            backends=("torch", "onnxruntime"),
            min_runs=3,
            min_seconds=0.01,
            warmup=1,
            end_to_end=False,
        )
    )
    assert [r.backend for r in report.results] == ["onnxruntime"]
    assert report.skipped[0].backend == "torch" and "does not run onnx" in report.skipped[0].reason


@pytest.mark.skipif(available_backends()["openvino"] is not None, reason="openvino is not installed")
def test_openvino_matches_onnxruntime(tiny_onnx):
    x = np.random.default_rng(0).standard_normal((2, 3, 3, 32, 32)).astype(np.float32)
    with (
        make_runner(tiny_onnx, "onnxruntime") as a,
        make_runner(tiny_onnx, "openvino") as dynamic,
        make_runner(tiny_onnx, "openvino", batch=3) as static,  # copies into its own input buffer
    ):
        first = static.infer(x[0])["logits"]
        for b in (dynamic, static):
            assert np.abs(a.infer(x[1])["logits"] - b.infer(x[1])["logits"]).max() < 1e-3
        assert (
            np.abs(a.infer(x[0])["logits"] - first).max() < 1e-3
        )  # a returned result is not overwritten later


def test_bench_runs_without_torch(tiny_onnx, tmp_path):
    """An edge target needs no training stack: block torch and bench the ONNX model."""
    code = (
        "import sys; sys.modules['torch'] = None\n"
        "from edgetl.cli import main\n"
        f"sys.argv = ['edgetl', 'bench', {str(tiny_onnx)!r}, '--backend', 'onnxruntime', '--min-runs', '5',"
        f" '--min-seconds', '0.05', '--compute-only', '-o', {str(tmp_path)!r}, '--quiet']\n"
        "main()\n"
    )
    env = {**os.environ, "COLUMNS": "200"}
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    saved = json.loads((tmp_path / "bench.json").read_text())
    assert saved["results"][0]["backend"] == "onnxruntime"
    assert saved["command"].startswith("edgetl bench ") and "--min-runs 5" in saved["command"]
    from edgetl.fileio import sha256_file

    assert saved["artifacts"][str(tiny_onnx)]["sha256"] == sha256_file(tiny_onnx)


def test_backends_report_reasons():
    status = available_backends()
    assert status["torch"] is None and status["onnxruntime"] is None
    if status["tensorrt"] is not None:
        assert "not installed" in status["tensorrt"]


@pytest.mark.tensorrt
def test_tensorrt_engine_build_and_run(tiny_onnx, tmp_path):
    pytest.importorskip("tensorrt", reason="TensorRT is not installed (JetPack or `pip install tensorrt`)")
    import torch

    if not torch.cuda.is_available():
        pytest.skip("TensorRT needs a CUDA GPU; none is visible")
    from edgetl.gpu.engine import BuildOptions, build_engine

    engine = build_engine(tiny_onnx, tmp_path / "tiny.engine", BuildOptions(max_batch=4)).path
    x = np.random.default_rng(0).standard_normal((2, 3, 32, 32)).astype(np.float32)
    with make_runner(tiny_onnx, "onnxruntime") as ref, make_runner(engine, "tensorrt") as trt:
        assert np.abs(ref.infer(x)["logits"] - trt.infer(x)["logits"]).max() < 5e-2
        assert trt.backend_latency_ms() > 0  # CUDA-event GPU time of the last call


def test_gpu_execution_providers_are_backends_with_reasons(tiny_onnx):
    ort = pytest.importorskip("onnxruntime")
    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("this onnxruntime has CUDA; the reason text is for CPU-only builds")
    status = available_backends()
    assert (
        "onnxruntime-gpu" in status["onnxruntime-cuda"]
        and "onnxruntime-gpu" in status["onnxruntime-tensorrt"]
    )
    from edgetl.errors import BackendUnavailable

    # nothing usable is an error naming why, never an empty report with exit 0
    with pytest.raises(BackendUnavailable, match="nothing to benchmark.*CUDAExecutionProvider"):
        bench(BenchConfig(artifacts=(tiny_onnx,), backends=("onnxruntime-cuda",), end_to_end=False))


def test_silent_cpu_fallback_of_a_gpu_provider_is_refused(tiny_onnx, monkeypatch):
    """onnxruntime-gpu on a machine whose GPU or CUDA libraries do not load: ORT only warns and
    runs on the CPU. The claim 'CUDA is installed' is patched in; the fallback is ORT's own."""
    import onnxruntime as ort

    from edgetl.errors import BackendUnavailable
    from edgetl.runners import registry

    real = ort.get_available_providers()
    if "CUDAExecutionProvider" in real:
        pytest.skip("CUDA really is available here")
    monkeypatch.setattr(ort, "get_available_providers", lambda: ["CUDAExecutionProvider", *real])
    with pytest.raises(BackendUnavailable, match="fell back to"):
        make_runner(tiny_onnx, "onnxruntime-cuda").activate()
    monkeypatch.setattr(
        registry, "available_backends", lambda: {**available_backends(), "onnxruntime-cuda": None}
    )
    cfg = BenchConfig(
        artifacts=(tiny_onnx,),
        backends=("onnxruntime-cuda", "onnxruntime"),
        end_to_end=False,
        min_runs=3,
        min_seconds=0,
        warmup=1,
        warmup_seconds=0,
    )
    report = bench(cfg)  # the failing backend is skipped with its reason; the others still run
    assert [r.backend for r in report.results] == ["onnxruntime"]
    assert "fell back to" in report.skipped[0].reason


def test_torch_on_a_missing_gpu_is_a_clear_error(tiny_checkpoint):
    import torch

    from edgetl.errors import BackendUnavailable

    if torch.cuda.is_available():
        pytest.skip("a GPU is visible")
    with pytest.raises(BackendUnavailable, match="no CUDA device is visible"):
        make_runner(tiny_checkpoint, "torch", device="cuda").activate()
