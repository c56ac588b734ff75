"""A detector ONNX on a target through the real loopback sshd: bench (end to end in stages, the
default image a detection image made here and sent), predict (the same boxes as here) and eval
(the same mAP as here on a COCO file both sides read), next to ``local``.

Collected through tests/remote/test_remote_e2e.py, so that they run on that file's pytest worker
and share its one install of edgetl on the 'board' (~30 s per install; each worker makes its own)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from edgetl.bench.end_to_end import STAGES
from tests.remote.conftest import edgetl, needs_sshd

pytestmark = [pytest.mark.slow, needs_sshd]

TIMING = ["--backend", "onnxruntime", "--warmup", "1", "--warmup-seconds", "0", "--min-runs", "5",
          "--min-seconds", "0.05"]  # fmt: skip


def _on(sshd, remote_dir) -> list[str]:
    return ["--on", sshd.url(dir=remote_dir), "--on", "local"]


def test_bench_of_a_detector_on_a_target_is_staged_like_the_local_one(
    sshd, remote_dir, first_run, tiny_detector_onnx, tmp_path
):
    assert first_run[0].returncode == 0, first_run[0].stderr
    proc = edgetl("bench", str(tiny_detector_onnx), *TIMING, *_on(sshd, remote_dir), "-o", "out",
                  env=sshd.env(), cwd=tmp_path, timeout=900)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    report = json.loads((tmp_path / "out" / "bench.json").read_text())
    label = f"127.0.0.1:{sshd.ports[0]}"
    rows = {r["target"]: r for r in report["results"]}
    assert set(rows) == {label, "local"} and report["targets"][label]["error"] is None
    for r in rows.values():
        assert r["artifact"] == str(tiny_detector_onnx) and r["kind"] == "onnx"
        e2e = r["end_to_end"]
        assert list(e2e["stages"]) == list(STAGES) and e2e["total"].startswith("measured")
        assert e2e["p50_ms"] > 0 and all(s["p50_ms"] >= 0 for s in e2e["stages"].values())
    # the target decoded the image made here from the detector's own data (sent with the model)
    assert Path(rows[label]["end_to_end"]["image"]).name == f"{tiny_detector_onnx.stem}_input.png"
    table = list(csv.DictReader((tmp_path / "out" / "bench.csv").read_text().splitlines()))
    assert {t["target"] for t in table} == {label, "local"}
    assert all(float(t["e2e_postprocess_p50_ms"]) >= 0 and float(t["e2e_p50_ms"]) > 0 for t in table)
    header = next(line for line in proc.stdout.splitlines() if "artifact" in line)
    assert " post " in header and " pre " in header


def test_predict_of_a_detector_on_a_target_gives_the_local_boxes(
    sshd, remote_dir, first_run, tiny_detector_onnx, tmp_path
):
    assert first_run[0].returncode == 0, first_run[0].stderr
    from edgetl.tasks.detect.sources import open_detection_source

    image = tmp_path / "photo.png"  # not square: letterboxed there and here, boxes mapped back
    open_detection_source("builtin:fashion-on-photos").load(0).resize((200, 100)).save(image)
    on = _on(sshd, remote_dir)
    proc = edgetl("predict", str(tiny_detector_onnx), str(image), "--json", "--top-k", "4", *on,
                  env=sshd.env(), cwd=tmp_path)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    remote, local = out[f"127.0.0.1:{sshd.ports[0]}"], out["local"]
    assert remote[0]["image"] == local[0]["image"] == str(image)
    there, here = remote[0]["detections"], local[0]["detections"]
    assert len(there) == len(here) == 4
    assert [(d["class"], d["label"]) for d in there] == [(d["class"], d["label"]) for d in here]
    np.testing.assert_allclose([d["box"] for d in there], [d["box"] for d in here], atol=0.02)
    np.testing.assert_allclose([d["score"] for d in there], [d["score"] for d in here], atol=1e-4)
    assert all(0 <= v <= 200 for d in there for v in d["box"][::2])  # in the image's own pixels

    shown = edgetl("predict", str(tiny_detector_onnx), str(image), "--top-k", "2", *on,
                   env=sshd.env(), cwd=tmp_path)  # fmt: skip
    assert shown.returncode == 0, shown.stderr
    assert f"{here[0]['label']}  [" in shown.stdout and shown.stdout.count(str(image)) == 2


def _coco(folder: Path, n: int) -> Path:
    """``n`` images of the built-in set with their boxes as a COCO instances JSON."""
    from edgetl.tasks.detect.sources import open_detection_source

    source = open_detection_source("builtin:fashion-on-photos")
    folder.mkdir()
    images, anns = [], []
    for i in range(n):
        img = source.load(i)
        img.save(folder / f"{i}.png")
        images.append({"id": i + 1, "file_name": f"{i}.png", "width": img.width, "height": img.height})
        t = source.targets[i]
        for (x1, y1, x2, y2), k in zip(t.boxes.tolist(), t.classes.tolist(), strict=True):
            bbox = [x1, y1, x2 - x1, y2 - y1]
            anns.append({"id": len(anns) + 1, "image_id": i + 1, "category_id": k + 1, "bbox": bbox,
                         "area": bbox[2] * bbox[3], "iscrowd": 0})  # fmt: skip
    cats = [{"id": k + 1, "name": c} for k, c in enumerate(source.classes)]
    path = folder / "instances_test.json"
    path.write_text(json.dumps({"images": images, "annotations": anns, "categories": cats}))
    return path


def test_eval_of_a_detector_on_a_target_equals_the_local_one(
    sshd, remote_dir, first_run, tiny_detector_onnx, tmp_path
):
    assert first_run[0].returncode == 0, first_run[0].stderr
    coco = _coco(tmp_path / "coco", 8)  # a path both sides read (the target is this machine)
    label = f"127.0.0.1:{sshd.ports[0]}"
    proc = edgetl("eval", str(tiny_detector_onnx), "--data", str(coco), "--split", "all", "-o", "ev",
                  *_on(sshd, remote_dir), env=sshd.env(), cwd=tmp_path, timeout=900)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    remote = json.loads((tmp_path / "ev" / label / "eval.json").read_text())
    local = json.loads((tmp_path / "ev" / "local" / "eval.json").read_text())
    assert remote["task"] == local["task"] == "detect"
    assert remote["num_images"] == local["num_images"] == 8 and remote["num_objects"] == local["num_objects"]
    assert remote["artifact"] == str(tiny_detector_onnx) and remote["backend"] == local["backend"]
    for key in ("map50_95", "map50", "ar100"):
        assert remote[key] == pytest.approx(local[key], abs=1e-6, nan_ok=True), key
    assert (tmp_path / "ev" / label / "pr_curves.png").read_bytes()[:4] == b"\x89PNG"
    assert "mAP50" in proc.stdout and "AR100" in proc.stdout
    assert f"{label}: wrote ev/{label}/eval.json" in proc.stdout
