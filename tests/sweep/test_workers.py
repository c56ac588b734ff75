"""Several workers on one study, a killed worker, and pruning: real processes, real storage."""

from __future__ import annotations

import os
import signal

import pytest

from edgetl.config import build_config, load_yaml
from edgetl.stages.sweep import SweepConfig, run
from edgetl.sweep.results import trial_rows
from tests.sweep.helpers import load_study, start_worker, sweep_yaml, trials_in_log, wait_until

pytestmark = pytest.mark.slow


def _running(study_fn, min_number: int = 0, min_epochs: int = 0):
    from optuna.trial import TrialState

    def check():
        for t in study_fn().get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            if t.number >= min_number and t.user_attrs.get("epochs_run", 0) >= min_epochs:
                return t
        return None

    return check


def _started(study_fn):
    return lambda: study_fn().get_trials(deepcopy=False)


def _two_workers(tmp_path, storage: str | None, trials: int):
    """Worker A in its own process, capped at half the trials (``trials_here``) so that however
    fast its trials run, worker B (this process), joining once A started one, gets the rest."""
    out = tmp_path / "out"
    settings = {"trials": trials, "storage": storage, "base": {"strategy": "full", "epochs": 2}}
    a_cfg = sweep_yaml(tmp_path / "a.yaml", out, trials_here=trials // 2, **settings)
    b_cfg = sweep_yaml(tmp_path / "b.yaml", out, **settings)
    log = tmp_path / "a.log"
    a = start_worker(a_cfg, log)
    try:
        wait_until(_started(lambda: load_study(storage, out)), 180, "worker A's first trial", a, log)
        b = run(build_config(SweepConfig, load_yaml(b_cfg), {}, str(b_cfg)))
        assert a.wait(timeout=180) == 0, log.read_text()[-3000:]
    finally:
        a.kill()
    return b, trials_in_log(log), trial_rows(load_study(storage, out))


def _assert_shared_without_repeats(result, a_trials: list[int], rows, trials: int) -> None:
    b_trials = result.metrics.ran_here
    assert a_trials and b_trials, (a_trials, b_trials)  # both workers took trials
    assert len(a_trials) <= trials // 2  # worker A kept to its --trials-here share
    assert not set(a_trials) & set(b_trials)  # no trial run by both
    assert sorted(a_trials + b_trials) == list(range(trials))  # N trials between them, none twice
    assert [r.state for r in rows] == ["complete"] * trials  # and no more were started
    assert len({r.worker for r in rows}) == 2
    params = [tuple(sorted(r.params.items())) for r in rows]
    assert len(set(params)) == trials  # the joining worker drew other settings


def test_two_processes_on_one_journal_file_share_the_trials(tmp_path):
    _assert_shared_without_repeats(*_two_workers(tmp_path, None, trials=4), trials=4)


def test_a_worker_killed_by_sigkill_loses_only_its_running_trial(tmp_path):
    out = tmp_path / "out"
    cfg = sweep_yaml(tmp_path / "sweep.yaml", out, trials=3, base={"strategy": "full", "epochs": 4})
    log = tmp_path / "a.log"
    a = start_worker(cfg, log)
    try:
        victim = wait_until(
            _running(lambda: load_study(None, out), min_number=1, min_epochs=1),
            240,
            "trial 1's first epoch",
            a,
            log,
        )
        os.kill(a.pid, signal.SIGKILL)
        a.wait(timeout=30)
    finally:
        a.kill()
    before = {t.number: t.value for t in load_study(None, out).get_trials() if t.value is not None}
    assert 0 in before and victim.number not in before

    result = run(build_config(SweepConfig, load_yaml(cfg), {}, str(cfg)))  # the same command again
    rows = {r.trial: r for r in result.metrics.trials}
    lost = rows[victim.number]
    assert lost.state == "lost" and "died" in lost.note and lost.epochs_run < 4
    for number, value in before.items():  # finished trials kept, not run again
        assert rows[number].state == "complete" and rows[number].val == value
        assert number not in result.metrics.ran_here
    assert sum(r.state == "complete" for r in rows.values()) == 3  # the budget, lost trial excluded
    assert not (out / "trials").exists()  # the killed trial's half-written files are gone


@pytest.mark.parametrize("pruner", ["median", "halving"])
def test_pruning_stops_a_hopeless_trial_after_its_first_epoch(tmp_path, pruner):
    from edgetl.models.checkpoint import load_checkpoint
    from edgetl.sweep.storage import open_storage, open_study
    from edgetl.sweep.worker import make_pruner, make_sampler

    out = tmp_path / "out"
    cfg_file = sweep_yaml(
        tmp_path / "sweep.yaml",
        out,
        trials=2,
        pruner=pruner,
        pruner_startup=1,
        space={"lr": {"low": 1e-7, "high": 0.5, "log": True}},
        base={"strategy": "linear", "epochs": 4},
    )
    cfg = build_config(SweepConfig, load_yaml(cfg_file), {}, str(cfg_file))
    # fix the order: a good lr first (it completes and sets the median), then a hopeless one
    study, _ = open_study(
        open_storage(None, out),
        "sweep",
        ["maximize"],
        cfg.signature(),
        make_sampler("random", 0, None, False),
        make_pruner(pruner, 1),
    )
    study.enqueue_trial({"lr": 0.1})
    study.enqueue_trial({"lr": 1e-7})

    m = run(cfg).metrics
    good, bad = m.trials
    assert (good.state, good.epochs_run) == ("complete", 4)
    assert bad.state == "pruned" and bad.epochs_run == 1  # stopped after 1 of its 4 epochs
    assert bad.val < good.val

    # results: only the best trial's checkpoint, a ready finetune config, plots
    assert m.best.trial == good.trial and m.best_checkpoint == out / "best.safetensors"
    _, manifest = load_checkpoint(m.best_checkpoint)
    assert manifest.metrics["val_top1"] == pytest.approx(good.val)
    from edgetl.train.config import FinetuneConfig

    ready = build_config(FinetuneConfig, load_yaml(m.best_config), {}, str(m.best_config))
    assert ready.lr == pytest.approx(0.1) and ready.epochs == 4 and ready.arch == "timm/test_efficientnet"
    assert m.plots["history"].stat().st_size > 0
    assert not (out / "trials").exists() and not list(out.glob("*.safetensors.resume.pt"))
