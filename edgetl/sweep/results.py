"""A study's results: the trials table, trials.json, the best config as a finetune YAML, plots."""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any, Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field

from edgetl.fileio import atomic_path, write_text_atomic

TrialState = Literal["complete", "pruned", "diverged", "lost", "failed", "running", "waiting"]


class TrialRow(BaseModel):
    model_config = ConfigDict(frozen=True)

    trial: int
    state: TrialState
    params: dict[str, Any]
    # the task's primary val metric (top-1, mAP); complete: the best epoch's; pruned: the last
    # epoch's before the stop (read as ``val_top1`` too, as studies before tasks recorded it)
    val: float | None = Field(validation_alias=AliasChoices("val", "val_top1"))
    epochs_run: int | None
    seconds: float | None
    p50_ms: float | None = None
    worker: str | None = None
    note: str | None = None


def state_of(t) -> TrialState:
    name = t.state.name.lower()
    if name == "fail":
        if "diverged" in t.user_attrs:
            return "diverged"
        return "failed" if "lost" not in t.user_attrs and "worker" in t.user_attrs else "lost"
    return name  # type: ignore[return-value]


def trial_rows(study) -> list[TrialRow]:
    """Every trial of the study in number order, except surplus asks past the budget."""
    rows = []
    for t in study.get_trials(deepcopy=False):
        if t.user_attrs.get("surplus"):
            continue
        state = state_of(t)
        val = trial_value(t)
        if val is None and t.intermediate_values:
            val = t.intermediate_values[max(t.intermediate_values)]
        seconds = None
        if t.datetime_start is not None and t.datetime_complete is not None:
            seconds = (t.datetime_complete - t.datetime_start).total_seconds()
        rows.append(
            TrialRow(
                trial=t.number,
                state=state,
                params=dict(t.params),
                val=val,
                epochs_run=t.user_attrs.get("epochs_run"),
                seconds=seconds,
                p50_ms=t.user_attrs.get("p50_ms"),
                worker=t.user_attrs.get("worker"),
                note=t.user_attrs.get("diverged") or t.user_attrs.get("lost"),
            )
        )
    return rows


def trial_value(t) -> float | None:
    """The val metric a finished trial recorded (``val_top1`` in studies from before tasks)."""
    return t.user_attrs.get("val", t.user_attrs.get("val_top1"))


def best_row(rows: list[TrialRow], direction: str = "max") -> TrialRow | None:
    """The complete trial with the best val metric by ``direction`` (ties: the earlier trial)."""
    done = [r for r in rows if r.state == "complete" and r.val is not None]
    sign = 1 if direction == "max" else -1
    return max(done, key=lambda r: (sign * r.val, -r.trial)) if done else None


def pareto_rows(rows: list[TrialRow], direction: str = "max") -> list[TrialRow]:
    """Complete trials no other beats on both the val metric (by ``direction``) and p50 ms (lower)."""
    done = [r for r in rows if r.state == "complete" and r.val is not None and r.p50_ms is not None]
    sign = 1 if direction == "max" else -1

    def dominated(r: TrialRow) -> bool:
        return any(
            sign * o.val >= sign * r.val and o.p50_ms <= r.p50_ms and (o.val, o.p50_ms) != (r.val, r.p50_ms)
            for o in done
        )

    return [r for r in done if not dominated(r)]


def table_text(rows: list[TrialRow], label: str = "val top-1") -> list[list[str]]:
    """Header + rows as strings, for the terminal and the report (``label``: the val metric's)."""
    keys = sorted({k for r in rows for k in r.params})
    latency = any(r.p50_ms is not None for r in rows)
    out = [["trial", "state", *keys, label, "epochs", "seconds", *(["p50 ms"] if latency else [])]]
    for r in rows:
        out.append(
            [
                str(r.trial),
                r.state,
                *[_fmt(r.params.get(k)) for k in keys],
                "-" if r.val is None else f"{r.val:.4f}",
                "-" if r.epochs_run is None else str(r.epochs_run),
                "-" if r.seconds is None else f"{r.seconds:.1f}",
                *([("-" if r.p50_ms is None else f"{r.p50_ms:.3f}")] if latency else []),
            ]
        )
    return out


def _fmt(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def command_for(values: dict[str, Any]) -> tuple[str, str]:
    """(the edgetl command that reads best.yaml, the pipeline block it belongs in): trials with a
    teacher distilled students."""
    return ("distill", "student") if values.get("teacher") else ("finetune", "teacher")


def best_config_yaml(
    base: dict[str, Any], best: TrialRow, study: str, epochs_note: str, label: str = "val top-1"
) -> str:
    """The base settings with the best trial's values, as YAML for ``edgetl finetune -c`` (or
    ``edgetl distill -c`` when the trials distilled from a teacher)."""
    import yaml

    values = {**base, **best.params}
    command, block = command_for(values)
    header = (
        f"# edgetl sweep, study {study}: best trial {best.trial} ({label} {best.val:.4f}).\n"
        f"# {epochs_note}\n"
        f"# Use: edgetl {command} -c best.yaml   (or paste into a pipeline's {block}: block)\n"
    )
    return header + yaml.safe_dump(json.loads(json.dumps(values, default=str)), sort_keys=False)


def write_json(path: Path, payload: dict) -> None:
    write_text_atomic(path, json.dumps(payload, indent=2, default=str) + "\n")


def _save(fig, path: Path) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100, format="png")


def write_plots(
    study, rows: list[TrialRow], out_dir: Path, multi: bool, label: str = "val top-1"
) -> tuple[dict[str, Path], list[str]]:
    """Optimisation history, parameter importance and (two objectives) the Pareto front as PNG,
    drawn by optuna.visualization.matplotlib (``label``: the val metric's); returns the files and
    why any plot was left out."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from optuna import visualization as vis

    complete = [r for r in rows if r.state == "complete"]
    plots: dict[str, Path] = {}
    skipped: list[str] = []
    val = {"target": (lambda t: t.values[0]), "target_name": label} if multi else {"target_name": label}
    wanted = [("history", lambda: vis.matplotlib.plot_optimization_history(study, **val))]
    varied = [
        k
        for k in {k for r in complete for k in r.params}
        if len({repr(r.params.get(k)) for r in complete}) > 1
    ]
    if len(complete) >= 2 and varied:
        wanted.append(("importance", lambda: vis.matplotlib.plot_param_importances(study, **val)))
    else:
        skipped.append("parameter importance: needs 2 or more complete trials that differ in a setting")
    if multi:
        if complete:
            wanted.append(
                (
                    "pareto",
                    lambda: vis.matplotlib.plot_pareto_front(study, target_names=[label, "p50 ms"]),
                )
            )
        else:
            skipped.append("Pareto front: no complete trial")
    if not complete:
        skipped.append("optimisation history: no complete trial")
        wanted = [w for w in wanted if w[0] != "history"]
    for name, draw in wanted:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # optuna marks its matplotlib plots experimental
            try:
                ax = draw()
            except (ValueError, RuntimeError) as exc:  # e.g. importance of a constant objective
                skipped.append(f"{name}: {exc}")
                continue
        fig = ax.figure if hasattr(ax, "figure") else ax.flat[0].figure
        fig.set_size_inches(7, 4.2)
        fig.tight_layout()
        path = out_dir / f"{name}.png"
        _save(fig, path)
        plt.close(fig)
        plots[name] = path
    return plots, skipped
