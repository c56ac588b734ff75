"""Adding a task is adding one package: a toy second task dropped on the tasks package path is
trained, exported, quantized, evaluated and benchmarked through the real CLI with nothing else
edited (the way tests/test_extending.py adds a backend).

The toy task, ordinal regression, predicts a digit's class index as one number: another output
name and width, a loss that is not cross-entropy, and a primary metric (mean absolute error)
that is lower-is-better, so every stage must take them from the task, not assume top-1.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

from tests.conftest import TINY_ARCH

TASK_INIT = '''
"""Ordinal regression: a digit's class index as one number."""
import numpy as np

from edgetl.tasks.spec import OutputSpec, TaskSpec


def _decode(outputs):
    return np.asarray(outputs["value"])[:, 0]


def _records(predictions, targets):
    return np.abs(np.asarray(predictions, dtype=np.float64) - np.asarray(targets, dtype=np.float64))


def _score(errors, indices=None):
    e = np.asarray(errors)
    return float((e if indices is None else e[indices]).mean())


def _metrics(predictions, targets, labels):
    errors = _records(predictions, targets)
    return {"mae": float(errors.mean()), "within_one": float((errors <= 1.0).mean())}


def _agreement(reference, candidate):
    return float((np.rint(_decode(reference)) == np.rint(_decode(candidate))).mean())


TASK = TaskSpec(
    name="ordinal",
    summary="ordinal regression: the class index as one number",
    target="one class index per image, read as a number",
    data_formats=("digits",),
    outputs=(OutputSpec("value", ("N", "1"), "the predicted class index"),),
    primary_metric="mae",
    metric_label="MAE",
    direction="min",
    stratify_key=lambda label: (int(label),),
    decode=_decode,
    records=_records,
    score=_score,
    metrics=_metrics,
    check_manifest=lambda m: [],
    check_graph=lambda m, outputs: [],
    check_weights=lambda m, shapes: [],
    render=lambda prediction, labels, top_k: {"value": round(float(prediction), 4)},
    agreement=_agreement,
    agreement_key="rounded_agreement",
    agreement_label="rounded agreement",
    training="edgetl.tasks.toy_ordinal.training",
)
'''

TASK_TRAINING = """
import torch
import torch.nn.functional as F
from torch import nn


def make_head(spec, in_features):
    return nn.Sequential(nn.Linear(in_features, 1))


def targets(labels, device=None):
    return torch.as_tensor(labels, dtype=torch.float32).to(device)


def loss(outputs, targets, config):
    return F.smooth_l1_loss(outputs.float()[:, 0], targets)
"""

LAUNCHER = """
import sys

import edgetl.tasks as package

package.__path__.append(sys.argv.pop(1))
from edgetl.cli import main

main()
"""


@pytest.fixture
def toy_task(tmp_path):
    plugins = tmp_path / "plugins"
    (plugins / "toy_ordinal").mkdir(parents=True)
    (plugins / "toy_ordinal" / "__init__.py").write_text(textwrap.dedent(TASK_INIT))
    (plugins / "toy_ordinal" / "training.py").write_text(textwrap.dedent(TASK_TRAINING))
    launcher = tmp_path / "edgetl_with_plugins.py"
    launcher.write_text(LAUNCHER)

    def cli(*args):
        env = {**os.environ, "EDGETL_QUIET": "1", "COLUMNS": "200"}
        r = subprocess.run(
            [sys.executable, str(launcher), str(plugins), *map(str, args)],
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
            cwd=tmp_path,
        )
        assert r.returncode == 0, f"edgetl {' '.join(map(str, args))}:\n{r.stdout}\n{r.stderr}"
        return r

    return cli


@pytest.mark.slow
def test_a_new_task_package_runs_through_finetune_export_quantize_eval_and_bench(toy_task, tmp_path):
    ckpt, onnx_path, int8 = tmp_path / "ord.safetensors", tmp_path / "ord.onnx", tmp_path / "ord.int8.onnx"
    data = ["--data", "digits"]
    limits = ["--set", "data.limit_train=400", "--set", "data.limit_val=100"]
    toy_task(
        "finetune", "--task", "ordinal", *data, *limits, "--arch", TINY_ARCH, "--no-pretrained",
        "--image-size", "32", "--epochs", "2", "--lr", "3e-3", "-o", ckpt,
    )  # fmt: skip
    manifest = json.loads(toy_task("inspect", ckpt, "--json").stdout)
    assert manifest["task"] == "ordinal" and manifest["outputs"] == ["value"]
    assert "val_mae" in manifest["metrics"] and "mae" in manifest["metrics"]["test"]
    assert any("by val MAE" in d for d in manifest["decisions"])

    toy_task("export", ckpt, "-o", onnx_path)
    exported = json.loads(toy_task("inspect", onnx_path, "--json").stdout)
    assert exported["task"] == "ordinal"
    assert exported["metrics"]["parity"]["rounded_agreement"] == 1.0

    toy_task(
        "quantize", onnx_path, "-o", int8, "--max-drop", "100", "--calib-count", "64", "--val-count", "100"
    )
    report = json.loads(toy_task("inspect", int8, "--json").stdout)["metrics"]["quantization"]
    assert report["task"] == "ordinal" and report["metric"] == "mae"
    assert set(report["fp32"]) == {"mae"} and report["drop_ci95_pt"][0] <= report["drop_pt"]

    for model in (onnx_path, int8):
        toy_task("eval", model, *data, "--limit-test", "100", "-o", tmp_path / model.stem)
        metrics = json.loads((tmp_path / model.stem / "eval.json").read_text())
        assert metrics["mae"] >= 0 and 0 <= metrics["within_one"] <= 1

    toy_task(
        "bench", onnx_path, int8, "--rounds", "1", "--min-runs", "3", "--min-seconds", "0",
        "--threads", "1", "-o", tmp_path / "bench",
    )  # fmt: skip
    results = json.loads((tmp_path / "bench" / "bench.json").read_text())["results"]
    assert {r["artifact"] for r in results} == {str(onnx_path), str(int8)}
    assert all(r["compute"]["p50_ms"] > 0 for r in results)


def test_the_docs_task_example_is_the_real_declaration():
    """docs/extending.md shows classification's TaskSpec as it is in the package, so it cannot drift."""
    from pathlib import Path

    import edgetl.tasks.classify as classify

    root = Path(__file__).resolve().parents[1]
    doc = (root / "docs" / "extending.md").read_text()
    section = doc[doc.index("## Add a task") :]
    code = section[section.index("```python\n") + len("```python\n") :]
    code = code[: code.index("```")]
    assert code.strip() and code.strip() in Path(classify.__file__).read_text()
    from edgetl.tasks.registry import task

    assert task("classify").primary_metric == "top1" and task("classify").output_names == ("logits",)
