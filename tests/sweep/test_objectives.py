"""The accuracy-latency objective (a Pareto front) and trials that diverge."""

from __future__ import annotations

import pytest

from edgetl.config import build_config, load_yaml
from edgetl.errors import EdgetlError
from edgetl.stages.sweep import SweepConfig, run
from tests.sweep.helpers import sweep_yaml

pytestmark = pytest.mark.slow


def _config(tmp_path, **settings) -> SweepConfig:
    path = sweep_yaml(tmp_path / "sweep.yaml", tmp_path / "out", **settings)
    return build_config(SweepConfig, load_yaml(path), {}, str(path))


def test_accuracy_latency_measures_each_graph_once_and_draws_the_pareto_front(tmp_path):
    pytest.importorskip("onnxruntime")
    cfg = _config(
        tmp_path,
        trials=3,
        sampler="grid",
        objective="accuracy-latency",
        latency_threads=1,
        space={"head": ["linear", "mlp"], "lr": [0.01, 0.05]},
        base={"strategy": "linear", "epochs": 2},
    )
    m = run(cfg).metrics
    assert [r.state for r in m.trials] == ["complete"] * 3
    by_head: dict[str, set[float]] = {}
    for r in m.trials:
        assert r.p50_ms is not None and r.p50_ms > 0
        by_head.setdefault(r.params["head"], set()).add(r.p50_ms)
    assert all(len(v) == 1 for v in by_head.values())  # same graph: timed once, shared by its trials
    assert m.pareto and set(m.pareto) <= {r.trial for r in m.trials}
    front = [r for r in m.trials if r.trial in m.pareto]
    for r in m.trials:  # no trial beats a front member on both objectives
        for f in front:
            assert not (r.val > f.val and r.p50_ms < f.p50_ms)
    assert m.plots["pareto"].stat().st_size > 0


def test_diverging_trials_are_recorded_and_all_diverged_is_an_error(tmp_path):
    cfg = _config(
        tmp_path,
        trials=2,
        sampler="grid",
        space={"lr": [1e12, 1e14]},
        base={"strategy": "linear", "epochs": 2, "optimizer": "sgd"},
    )
    with pytest.raises(EdgetlError, match="every finished trial diverged: lower the lr range"):
        run(cfg)
    from tests.sweep.helpers import load_study

    states = [t.user_attrs.get("diverged", "") for t in load_study(None, tmp_path / "out").get_trials()]
    assert len(states) == 2 and all(s.startswith("training diverged in epoch") for s in states)


def test_a_distillation_sweep_trains_students_from_the_teacher_and_writes_a_distill_config(
    tmp_path, tiny_checkpoint
):
    """A teacher in the base: each trial distils (KD settings from the space), its val top-1 is
    the objective, and best.yaml is ready for `edgetl distill -c`."""
    cfg = _config(
        tmp_path,
        trials=2,
        sampler="grid",
        space={"temperature": [2.0, 6.0]},
        base={"teacher": str(tiny_checkpoint), "epochs": 1, "image_size": 32},
    )
    result = run(cfg)
    m = result.metrics
    assert [r.state for r in m.trials] == ["complete"] * 2
    assert sorted(r.params["temperature"] for r in m.trials) == [2.0, 6.0]
    assert all(r.epochs_run == 1 and 0.0 <= r.val <= 1.0 for r in m.trials)
    best = load_yaml(m.best_config)
    assert best["teacher"] == str(tiny_checkpoint) and best["temperature"] == m.best.params["temperature"]
    assert "edgetl distill -c" in m.best_config.read_text()
    from edgetl.manifest import read_manifest

    assert read_manifest(m.best_checkpoint).provenance.stage == "distill"
    import io

    from rich.console import Console

    from edgetl.stages.sweep import STAGE

    out = io.StringIO()
    STAGE.show(result, Console(file=out, width=400))  # what the CLI prints: the same command
    assert f"edgetl distill -c {m.best_config}" in out.getvalue() and "finetune -c" not in out.getvalue()


def test_a_detector_sweep_maximises_val_map_and_writes_its_best_config(tmp_path):
    """A detection base is swept like a classifier: the study maximises val mAP (the detector's
    primary metric), each trial records it, best.yaml and the table name it, and the kept
    checkpoint is the best trial's."""
    from edgetl.manifest import read_manifest
    from tests.conftest import TINY_ARCH

    cfg = _config(
        tmp_path,
        trials=2,
        sampler="grid",
        limit_train=48,
        space={"lr": [0.001, 0.01]},
        base={
            "data": {"source": "builtin:fashion-on-photos", "limit_val": 16},
            "arch": TINY_ARCH,
            "image_size": 64,
            "batch_size": 8,
            "epochs": 1,
        },
    )
    assert cfg.trial_task() == "detect"
    m = run(cfg).metrics
    assert (m.metric, m.metric_label, m.direction) == ("map50_95", "mAP", "max")
    assert [r.state for r in m.trials] == ["complete"] * 2 and all(0.0 <= r.val <= 1.0 for r in m.trials)
    best = max(m.trials, key=lambda r: (r.val, -r.trial))
    assert m.best.trial == best.trial
    from tests.sweep.helpers import load_study

    study = load_study(None, tmp_path / "out")
    assert [d.name for d in study.directions] == ["MAXIMIZE"]
    assert [t.user_attrs["val"] for t in study.get_trials()] == [r.val for r in m.trials]
    text = m.best_config.read_text()
    assert f"(val mAP {best.val:.4f})" in text.splitlines()[0]
    from edgetl.sweep.results import table_text

    assert "val mAP" in table_text(m.trials, "val mAP")[0]
    assert read_manifest(m.best_checkpoint).metrics["val_map50_95"] == pytest.approx(best.val)
