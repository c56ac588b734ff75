"""The task's headline metrics: what `edgetl inspect`, `eval` and `finetune` print first."""

from __future__ import annotations

import subprocess
import sys

from edgetl.tasks.registry import task


def test_classify_headline_reads_top1_and_top5():
    line = task("classify").headline_text({"top1": 0.93541, "top5": 0.999, "num_samples": 10})
    assert line == "top-1 0.9354, top-5 0.9990"


def test_detect_headline_reads_map_first_and_skips_what_is_missing():
    line = task("detect").headline_text({"map50_95": 0.332, "map50": 0.5, "per_class": {}})
    assert line == "mAP 0.3320, mAP50 0.5000"


def test_a_task_without_headline_shows_its_primary_metric():
    from dataclasses import replace

    bare = replace(task("classify"), headline=())
    assert bare.headline_metrics == (("top1", "top-1"),)
    assert bare.headline_text({"top1": 0.5}) == "top-1 0.5000"


def test_inspect_prints_the_test_line_from_the_tasks_headline(tiny_checkpoint):
    out = subprocess.run(
        [sys.executable, "-m", "edgetl", "inspect", str(tiny_checkpoint)],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    test_line = next(line for line in out.splitlines() if line.startswith("test "))
    assert "top-1 0." in test_line and ", top-5 " in test_line and "images" in test_line
