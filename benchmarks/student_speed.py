"""Where a small student's time goes, and its speed-up against the teacher's fastest runtime.

Every file (teacher first) on ONNX Runtime and OpenVINO in one `edgetl bench` run (interleaved
rounds, 2 threads), then for each file, on each runtime, the same call timed three ways in
interleaved rounds: through edgetl's runner (what the bench reports), the runtime's bare call
(``session.run`` / ``request.infer``), and the bare call on a one-op graph of the same input (the
runtime's per-call floor). The ratio is the pipeline report's headline: the student's fastest
runtime against the teacher's fastest, paired round by round.

    python benchmarks/student_speed.py --teacher runs/fashion-mnist/export/teacher.onnx \\
        --student s_32=runs/a/export/student.onnx --student s2_28=runs/b/export/student.onnx
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import write_result  # noqa: E402

BACKENDS = ("onnxruntime", "openvino")


def floor_model(shape: tuple[int, ...]):
    """A one-op graph (ReduceMean over H, W) on the model's input: the runtime's per-call floor."""
    import onnx
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, list(shape))
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    node = helper.make_node("ReduceMean", ["x", "axes"], ["y"], keepdims=0)
    axes = helper.make_tensor("axes", TensorProto.INT64, [2], [2, 3])
    graph = helper.make_graph([node], "floor", [x], [y], initializer=[axes])
    return onnx.helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]).SerializeToString()


def bare_calls(model, shape, backend: str, threads: int):
    """The runtime's own call on ``model`` (a path or serialized bytes), without edgetl's runner."""
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    if backend == "onnxruntime":
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads, opts.inter_op_num_threads = threads, 1
        session = ort.InferenceSession(model if isinstance(model, bytes) else str(model), opts)
        name = session.get_inputs()[0].name
        return lambda: session.run(None, {name: x})
    import openvino as ov

    core = ov.Core()
    read = core.read_model(model if isinstance(model, bytes) else str(model))
    read.reshape({read.inputs[0].any_name: list(shape)})
    config = {
        "PERFORMANCE_HINT": "LATENCY",
        "INFERENCE_PRECISION_HINT": "f32",
        "INFERENCE_NUM_THREADS": threads,
    }
    request = core.compile_model(read, "CPU", config).create_infer_request()
    tensor = request.get_input_tensor()

    def call():
        np.copyto(tensor.data, x)
        request.infer()
        return request.get_output_tensor(0).data.copy()

    return call


def p50_ms(fn, calls: int) -> float:
    for _ in range(calls // 5):
        fn()
    times = np.empty(calls)
    for i in range(calls):
        t0 = time.perf_counter()
        fn()
        times[i] = time.perf_counter() - t0
    return float(np.median(times) * 1e3)


def breakdown(path: Path, backend: str, threads: int, rounds: int, calls: int) -> dict:
    """p50 ms through edgetl's runner, of the bare call, and of the runtime's floor (interleaved)."""
    from edgetl.bench.config import BenchConfig
    from edgetl.bench.timing import runner_options
    from edgetl.runners.registry import make_runner

    options = runner_options(backend, BenchConfig(artifacts=(path,), threads=threads), 1)
    with make_runner(path, backend, **options) as runner:
        _, c, h, w = runner.manifest.input.shape
        shape = (1, c, h, w)
        x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
        fns = {
            "runner": lambda: runner.infer(x),
            "bare": bare_calls(path, shape, backend, threads),
            "floor": bare_calls(floor_model(shape), shape, backend, threads),
        }
        got: dict[str, list[float]] = {k: [] for k in fns}
        for _ in range(rounds):
            for k, fn in fns.items():
                got[k].append(p50_ms(fn, calls))
    out = {f"{k}_p50_ms": float(np.median(v)) for k, v in got.items()}
    out["runner_overhead_ms"] = out["runner_p50_ms"] - out["bare_p50_ms"]
    out["compute_above_floor_ms"] = out["bare_p50_ms"] - out["floor_p50_ms"]
    return out


def headline(results, teacher: Path, names: dict[Path, str]) -> dict:
    """Each student's fastest runtime against the teacher's fastest, paired by round."""
    by = {(Path(r.artifact), r.backend): r for r in results}

    def fastest(path: Path):
        runs = [by[(path, b)] for b in BACKENDS if (path, b) in by]
        return min(runs, key=lambda r: r.compute.p50_ms)

    t = fastest(teacher)
    out = {"teacher": {"backend": t.backend, "p50_ms": t.compute.p50_ms}}
    for path, name in names.items():
        s = fastest(path)
        ratios = np.asarray(t.stability.p50_ms) / np.asarray(s.stability.p50_ms)
        out[name] = {
            "backend": s.backend,
            "p50_ms": s.compute.p50_ms,
            "p50_ms_by_backend": {b: by[(path, b)].compute.p50_ms for b in BACKENDS if (path, b) in by},
            "speedup_vs_teacher_fastest": float(np.median(ratios)),
            "speedup_by_round": ratios.round(3).tolist(),
        }
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--teacher", type=Path, required=True)
    ap.add_argument("--student", action="append", required=True, help="NAME=path.onnx, repeatable")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--calls", type=int, default=400, help="timed calls per breakdown round")
    ap.add_argument("--name", default="student_speed")
    ap.add_argument("--note", default="", help="what the files are (weights, how they were made)")
    args = ap.parse_args()
    from edgetl.bench.config import BenchConfig
    from edgetl.bench.run import bench

    names = {Path(p): n for n, p in (s.split("=", 1) for s in args.student)}
    run = bench(
        BenchConfig(
            artifacts=(args.teacher, *names),
            backends=BACKENDS,
            threads=args.threads,
            rounds=args.rounds,
            min_seconds=1.0,
            end_to_end=False,
        )
    )
    files = {args.teacher: "teacher", **names}
    split = {
        name: {b: breakdown(p, b, args.threads, args.rounds, args.calls) for b in BACKENDS}
        for p, name in files.items()
    }
    write_result(
        args.name,
        {
            "files": {n: str(p) for p, n in files.items()},
            "note": args.note,
            "headline": headline(run.results, args.teacher, names),
            "breakdown": split,
            "breakdown_what": "p50 ms per call at batch 1: runner = edgetl's runner.infer (the bench's "
            "number); "
            "bare = the runtime's own call with the same settings; floor = the bare call on a one-op graph "
            "(ReduceMean) of the same input; interleaved rounds, median over rounds",
            "contention": run.contention.model_dump() if run.contention else None,
        },
        threads=args.threads,
    )


if __name__ == "__main__":
    main()
