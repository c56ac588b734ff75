"""A sweep worker: takes trials from the study until its budget or this worker's timeout is
spent. Start the same command in several processes (or on several machines with a database
storage) and they share the budget; each trial is claimed by exactly one worker."""

from __future__ import annotations

import time
from collections.abc import Callable

from edgetl.progress import make_progress, step
from edgetl.sweep.trial import BudgetReached, TrialPlan, objective, remove_trial_dir


def make_sampler(name: str, seed: int | None, grid: dict[str, list] | None, multi: bool):
    import optuna

    if name == "grid":
        return optuna.samplers.GridSampler(grid, seed=seed)
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    # constant_liar: running trials count as bad guesses, so parallel workers spread out
    return optuna.samplers.TPESampler(seed=seed, constant_liar=True, multivariate=not multi)


def make_pruner(name: str, startup: int):
    import optuna

    if name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=startup, n_warmup_steps=0)
    if name == "halving":
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=1, reduction_factor=3)
    return optuna.pruners.NopPruner()


def kept_trials(study) -> int:
    """Trials that use up the budget: finished or running (queued ones still need a worker)."""
    from optuna.trial import TrialState

    from edgetl.sweep.storage import counts

    return sum(1 for t in study.get_trials(deepcopy=False) if counts(t) and t.state != TrialState.WAITING)


def run_worker(
    study,
    plan: TrialPlan,
    timeout: float | None,
    describe: Callable[[object], str],
    max_here: int | None = None,
) -> list[int]:
    """Run trials until the study holds ``plan.budget`` of them (lost ones do not count),
    ``timeout`` seconds have passed since this worker started, or ``max_here`` ran here; returns
    the trial numbers run here."""
    from edgetl.sweep.storage import fail_dead_local_trials
    from edgetl.train.loop import TrainingDiverged

    start = time.monotonic()
    mine: list[int] = []
    with make_progress() as progress:
        task = progress.add_task("sweep trials", total=plan.budget, completed=kept_trials(study), info="")
        while True:
            for number in fail_dead_local_trials(study):
                remove_trial_dir(plan, number)  # its half-trained files
                step(f"trial {number}: its worker died; the trial is lost and another takes its place")
            if kept_trials(study) >= plan.budget:
                break
            if timeout is not None and time.monotonic() - start >= timeout:
                step(f"--timeout {timeout:g} s reached: this worker starts no more trials")
                break
            if max_here is not None and len(mine) >= max_here:
                step(f"--trials-here {max_here}: this worker ran its share and starts no more trials")
                break
            before = {t.number for t in study.get_trials(deepcopy=False)}
            study.optimize(
                lambda trial: objective(trial, plan),
                n_trials=1,
                catch=(TrainingDiverged, BudgetReached),
                gc_after_trial=False,
            )
            new = [t for t in study.get_trials(deepcopy=False) if t.number not in before]
            ran = [t for t in new if t.user_attrs.get("worker") and not t.user_attrs.get("surplus")]
            ran = [t for t in ran if t.user_attrs["worker"] == _me()]
            for t in ran:
                mine.append(t.number)
                step(describe(t))
            if any(t.user_attrs.get("surplus") and t.user_attrs.get("worker") == _me() for t in new):
                break
            progress.update(task, completed=kept_trials(study), info=f"{len(mine)} here")
    return mine


def _me() -> str:
    from edgetl.sweep.storage import worker_id

    return worker_id()
