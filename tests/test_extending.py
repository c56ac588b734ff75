"""Adding a backend is adding one module: a runner module dropped on the runners package path
is found by the registry, listed, benchmarked and evaluated with nothing else edited."""

from __future__ import annotations

import textwrap

import pytest

DEMO = '''
"""A second ONNX Runtime CPU backend with sequential execution: a real backend, not a fake."""
from edgetl.runners.base import Runner
from edgetl.runners.spec import BackendSpec, Options


class DemoOptions(Options):
    threads: int | None = None


class DemoRunner(Runner):
    backend = "demo-ort-sequential"

    def __init__(self, path, manifest=None, threads=None):
        super().__init__(path, manifest)
        self.threads, self.session = threads, None

    def activate_impl(self):
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        if self.threads:
            opts.intra_op_num_threads = self.threads
        self.session = ort.InferenceSession(str(self.path), opts, providers=["CPUExecutionProvider"])

    def infer_impl(self, x):
        return self.session.run(None, {self.session.get_inputs()[0].name: x})[0]


BACKENDS = [
    BackendSpec(
        name="demo-ort-sequential",
        runner="DemoRunner",
        library="onnxruntime",
        kinds=("onnx", "onnx-int8"),
        options=DemoOptions,
        install="pip install onnxruntime",
        order=99,
    )
]
'''


@pytest.fixture
def demo_backend(tmp_path, monkeypatch):
    import edgetl.runners as package
    from edgetl.runners import registry

    folder = tmp_path / "plugins"
    folder.mkdir()
    (folder / "demo_runner.py").write_text(textwrap.dedent(DEMO))
    monkeypatch.setattr(package, "__path__", [*package.__path__, str(folder)])
    registry.backends.cache_clear()
    yield "demo-ort-sequential"
    registry.backends.cache_clear()


def test_a_new_runner_module_is_a_backend_everywhere(demo_backend, tiny_onnx):
    from edgetl.bench.config import BenchConfig
    from edgetl.bench.run import bench
    from edgetl.data.dataset import DataConfig
    from edgetl.evaluate import evaluate
    from edgetl.runners.registry import available_backends, backends_for

    assert available_backends()[demo_backend] is None
    assert demo_backend in backends_for("onnx")
    report = bench(
        BenchConfig(
            artifacts=(tiny_onnx,),
            backends=(demo_backend,),
            threads=1,
            min_runs=3,
            min_seconds=0,
            warmup=1,
            warmup_seconds=0,
            end_to_end=False,
        )
    )
    assert [r.backend for r in report.results] == [demo_backend]
    data = DataConfig(source="digits", limit_test=60)
    ours = evaluate(tiny_onnx, data, "test", backend=demo_backend)
    reference = evaluate(tiny_onnx, data, "test", backend="onnxruntime")
    assert ours.backend == demo_backend and ours.top1 == reference.top1
