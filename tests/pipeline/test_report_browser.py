"""report.html opened in a real headless chromium: every image loads, every table renders.

The report is written the way the pipeline writes it (``_blocks_to_html`` on the same kinds of
blocks, plots from ``edgetl.bench.plots``) without running the pipeline itself, so this stays fast.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from edgetl.bench.plots import LatencyPoint, plot_latency_accuracy
from edgetl.fileio import write_text_atomic
from edgetl.pipeline.blocks import blocks_to_html as _blocks_to_html
from tests.browser import browser_missing, check_html_renders, headless_chromium


@pytest.fixture(scope="module")
def chromium():
    reason = browser_missing()
    if reason:
        pytest.skip(f"browser check needs chromium: {reason}")
    from selenium.webdriver.common.selenium_manager import SeleniumManager

    def no_downloads(self, *args):
        raise AssertionError("Selenium Manager must not run: the driver path is explicit")

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(SeleniumManager, "binary_paths", no_downloads)
        with headless_chromium() as driver:
            yield driver


def _confusion_png(path: Path, n: int = 10) -> str:
    rng = np.random.default_rng(0)
    m = rng.integers(0, 40, (n, n)) + np.eye(n, dtype=int) * 900
    img = (255 - 255 * m / m.max()).astype(np.uint8).repeat(24, 0).repeat(24, 1)
    Image.fromarray(img, "L").save(path)
    return str(path)


def _report_blocks(out: Path) -> list[tuple]:
    """The blocks write_report builds for a fashion-mnist run, with made-up but realistic numbers."""
    arts = [
        ("teacher (torch)", "checkpoint", 0.9361, "torch", 12.3),
        ("student (torch)", "checkpoint", 0.9356, "torch", 2.1),
        ("student (onnx fp32)", "onnx", 0.9356, "onnxruntime", 0.81),
        ("student (onnx int8)", "onnx-int8", 0.9354, "onnxruntime", 0.45),
    ]
    points = [LatencyPoint(a, b, ms, top1, shipped=k == "onnx-int8") for a, k, top1, b, ms in arts]
    points.append(LatencyPoint("student (onnx int8)", "openvino", 0.44, 0.9354))
    plot_latency_accuracy(points, out / "latency_accuracy.png", title="latency vs accuracy (batch 1)")
    classes = ["T-shirt", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Boot"]
    return [
        ("h1", "edgetl report: fashion-mnist"),
        ("p", "generated 2025-01-01T00:00:00+00:00; every number below was measured in this run."),
        ("ul", ["shipped model: student.int8.onnx (onnx-int8), test top-1 0.9354 vs teacher 0.9361"]),
        ("h2", "Artifacts"),
        (
            "table",
            ["artifact", "kind", "test top-1", "Δ vs teacher (pt)", "MB", "onnxruntime p50/p99 ms"],
            [
                [a, k, f"{t:.4f}", f"{100 * (t - 0.9361):+.2f}", "1.20", f"{ms:.3f} / {2 * ms:.3f}"]
                for a, k, t, _, ms in arts
            ],
        ),
        ("h2", "Per-class test accuracy: teacher (%) and deltas (pt)"),
        ("table", ["class", "teacher", "student (onnx int8)"], [[c, "93.1", "-0.2"] for c in classes]),
        ("h2", "Latency vs accuracy"),
        ("img", str(out / "latency_accuracy.png"), "latency vs accuracy"),
        ("ul", ["student (onnx int8) on onnxruntime: 1.80x vs student (onnx fp32)"]),
        ("h2", "Confusion matrices"),
        ("img", _confusion_png(out / "confusion.png"), "teacher confusion"),
        ("h2", "Stages"),
        ("table", ["stage", "status", "seconds"], [["finetune", "ran", "61.2"], ["bench", "ran", "9.8"]]),
        ("h2", "Environment"),
        ("pre", json.dumps({"cpu": "x86_64", "threads": 2}, indent=2)),
    ]


def _write_report(out: Path, blocks: list[tuple], extra_html: str = "") -> Path:
    html = _blocks_to_html(blocks, "edgetl report").replace("</body>", extra_html + "</body>")
    write_text_atomic(out / "report.html", html)
    return out / "report.html"


def test_report_html_renders_in_chromium(tmp_path, chromium):
    out = tmp_path / "report"
    out.mkdir()
    # inlined images as write_report does, plus one relative link as report.md has (file:// serves it)
    path = _write_report(out, _report_blocks(out), "<p><img alt='linked' src='latency_accuracy.png'></p>")
    assert check_html_renders(path, chromium) == []
    sizes = chromium.execute_script(
        "return Array.from(document.images).map(i => [i.naturalWidth, i.naturalHeight])"
    )
    assert len(sizes) == 3 and all(w >= 200 and h >= 200 for w, h in sizes)
    assert len(chromium.find_elements("css selector", "table")) == 3


def test_check_catches_broken_images_and_empty_tables(tmp_path, chromium):
    out = tmp_path / "report"
    out.mkdir()
    half_written = out / "half.png"
    half_written.write_bytes(_png_bytes(out)[:200])  # a truncated PNG: inlined, but cannot decode
    blocks = [
        ("h1", "broken report"),
        ("table", ["trial", "lr", "val top-1"], []),  # a sweep with no trials: header only
        ("img", str(half_written), "truncated plot"),
        ("table", ["stage", "seconds"], [["bench", "1.0"]]),  # fine
    ]
    extra = "<img alt='missing' src='missing.png'><table style='display:none'><tr><td>x</td></tr></table>"
    problems = check_html_renders(_write_report(out, blocks, extra), chromium)
    assert len(problems) == 4, problems
    joined = "\n".join(problems)
    assert '<table> #1 ("trial") has a header but no data rows' in joined
    assert "truncated plot" in joined and "missing.png" in joined
    assert '<table> #3 ("x") is not shown' in joined
    assert check_html_renders(out / "nope.html", chromium) == [
        f"{(out / 'nope.html').resolve()} does not exist"
    ]


def _png_bytes(out: Path) -> bytes:
    return Path(_confusion_png(out / "whole.png")).read_bytes()
