"""End to end through a real sshd: a second edgetl install reached only over ssh (its own venv,
installed from a wheel of this checkout), content-addressed copies, remote bench/eval/predict,
the JSON back and merged, parallel targets, and targets that fail alone with a clear message."""

from __future__ import annotations

import json

import pytest

from tests.remote.conftest import FAST, edgetl, needs_sshd
from tests.remote.detect_cases import (  # noqa: F401 - collected here: one board install for both
    test_bench_of_a_detector_on_a_target_is_staged_like_the_local_one,
    test_eval_of_a_detector_on_a_target_equals_the_local_one,
    test_predict_of_a_detector_on_a_target_gives_the_local_boxes,
)

pytestmark = [pytest.mark.slow, needs_sshd]


def test_first_bench_installs_its_own_edgetl_there_and_merges_the_json(
    sshd, remote_dir, tiny_onnx, first_run
):
    proc, cwd, _ = first_run
    assert proc.returncode == 0, proc.stderr
    report = json.loads((cwd / "out" / "bench.json").read_text())
    label = f"127.0.0.1:{sshd.ports[0]}"
    target = report["targets"][label]
    assert target["error"] is None and target["runtime"] == "installed"
    # the artifact, the wheel and the config were sent; nothing was there before
    assert target["files_sent"] == 3 and target["files_already_there"] == 0
    assert target["bytes_sent"] > tiny_onnx.stat().st_size
    results = report["results"]
    assert [r["target"] for r in results] == [label]
    assert results[0]["artifact"] == str(tiny_onnx)  # mapped back from the run folder there
    assert results[0]["compute"]["p50_ms"] > 0 and results[0]["compute"]["runs"] >= 5
    assert target["environment"]["versions"]  # the target's own environment stamp came back
    # the remote runs its own copy of edgetl (a wheel install), not this checkout
    installed = list((remote_dir / "venv").glob("lib/python3*/site-packages/edgetl/bench/"))
    assert len(installed) == 1
    assert not list((remote_dir / "venv").glob("lib/python3*/site-packages/*edgetl*.pth"))
    assert "torch" not in {p.name for p in (remote_dir / "venv").glob("lib/python3*/site-packages/*")}
    assert not list((remote_dir / "runs").iterdir())  # the run folder was removed
    header, row = (cwd / "out" / "bench.csv").read_text().splitlines()
    assert header.startswith("target,artifact,") and row.startswith(f"{label},{tiny_onnx},")


def test_second_bench_sends_nothing_and_reuses_the_runtime(sshd, remote_dir, tiny_onnx, first_run, tmp_path):
    assert first_run[0].returncode == 0, first_run[0].stderr
    from edgetl.remote.fingerprint import fingerprint

    before = fingerprint()
    proc = edgetl("bench", str(tiny_onnx), *FAST, "--on", sshd.url(dir=remote_dir), "-o", "out",
                  env=sshd.env(), cwd=tmp_path)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    target = json.loads((tmp_path / "out" / "bench.json").read_text())["targets"][
        f"127.0.0.1:{sshd.ports[0]}"
    ]
    assert target["files_already_there"] >= 2  # the artifact and the bench config
    if before == fingerprint() == first_run[2]:
        assert target["runtime"] == "present"
        assert target["files_sent"] == 0 and target["bytes_sent"] == 0
    else:  # the checkout was edited in between (several people at work): the new code goes over
        assert target["runtime"] == "installed" and target["files_sent"] == 1


def test_parallel_targets_and_an_unreachable_one_failing_alone(
    sshd, remote_dir, tiny_onnx, first_run, tmp_path
):
    assert first_run[0].returncode == 0, first_run[0].stderr
    env = sshd.env()
    saved = edgetl("targets", "add", "board", f"ssh://board-a?dir={remote_dir}", env=env, cwd=tmp_path)
    assert saved.returncode == 0, saved.stderr
    closed = f"ssh://{sshd.user}@127.0.0.1:{sshd.closed_port}?dir={remote_dir}"
    proc = edgetl("bench", str(tiny_onnx), *FAST, "--compare", "--on", "@board",
                  "--on", sshd.url(1, dir=remote_dir), "--on", closed, "--on", "local", "-o", "out",
                  env=env, cwd=tmp_path)  # fmt: skip
    assert proc.returncode == 2  # one target failed: the command fails, after the others finished
    assert "1 of 4 targets failed" in proc.stderr and "cannot reach" in proc.stderr
    assert "Connection refused" in proc.stderr
    report = json.loads((tmp_path / "out" / "bench.json").read_text())
    second = f"127.0.0.1:{sshd.ports[1]}"
    failed = f"127.0.0.1:{sshd.closed_port}"
    assert sorted(r["target"] for r in report["results"]) == sorted(["board", second, "local"])
    assert report["targets"][failed]["error"].startswith(f"{failed}: cannot reach")
    assert report["targets"]["board"]["error"] is None and report["targets"][second]["error"] is None
    assert (tmp_path / "out" / "latency_accuracy.png").stat().st_size > 0
    csv_rows = (tmp_path / "out" / "bench.csv").read_text().splitlines()
    assert csv_rows[0].startswith("target,") and len(csv_rows) == 4
    assert "board" in proc.stdout and "failed" in proc.stdout  # the table and the failure line


def test_unknown_host_key_is_refused_with_how_to_add_it(sshd, tiny_onnx, tmp_path):
    proc = edgetl("bench", str(tiny_onnx), *FAST, "--on", f"ssh://stranger?dir={tmp_path / 'x'}", "-o", "out",
                  env=sshd.env(), cwd=tmp_path)  # fmt: skip
    assert proc.returncode == 2
    assert "not in known_hosts" in proc.stderr and "ssh-keyscan" in proc.stderr
    assert not (tmp_path / "x").exists()  # nothing ran there


def test_install_never_names_what_to_install(sshd, tiny_onnx, tmp_path):
    proc = edgetl("bench", str(tiny_onnx), *FAST, "--on", sshd.url(dir=tmp_path / "fresh", install="never"),
                  "-o", "out", env=sshd.env(), cwd=tmp_path)  # fmt: skip
    assert proc.returncode == 2
    assert "has no edgetl and install=never" in proc.stderr and "pip install" in proc.stderr


def test_predict_on_a_target_matches_local(sshd, remote_dir, tiny_onnx, first_run, tmp_path):
    assert first_run[0].returncode == 0, first_run[0].stderr
    from PIL import Image

    image = tmp_path / "digit.png"
    Image.new("RGB", (32, 32), (200, 30, 30)).save(image)
    on = ["--on", sshd.url(dir=remote_dir), "--on", "local"]
    proc = edgetl("predict", str(tiny_onnx), str(image), "--json", "--top-k", "3", *on,
                  env=sshd.env(), cwd=tmp_path)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    remote, local = out[f"127.0.0.1:{sshd.ports[0]}"], out["local"]
    assert remote[0]["image"] == str(image)
    assert [t["label"] for t in remote[0]["top"]] == [t["label"] for t in local[0]["top"]]
    assert remote[0]["top"][0]["probability"] == pytest.approx(local[0]["top"][0]["probability"], abs=1e-4)


def test_eval_on_a_target_next_to_local(sshd, remote_dir, tiny_onnx, first_run, tmp_path):
    assert first_run[0].returncode == 0, first_run[0].stderr
    import numpy as np
    from PIL import Image
    from sklearn.datasets import load_digits

    digits = load_digits()
    for label in range(10):  # an ImageFolder that exists on the target too (it is this machine)
        folder = tmp_path / "digits" / str(label)
        folder.mkdir(parents=True)
        for i, img in enumerate(digits.images[digits.target == label][:4]):
            Image.fromarray((img * 16).clip(0, 255).astype(np.uint8)).save(folder / f"{i}.png")
    label = f"127.0.0.1:{sshd.ports[0]}"
    on = ["--on", sshd.url(dir=remote_dir), "--on", "local"]
    proc = edgetl("eval", str(tiny_onnx), "--data", str(tmp_path / "digits"), "--split", "all", "-o", "ev",
                  *on, env=sshd.env(), cwd=tmp_path)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    remote = json.loads((tmp_path / "ev" / label / "eval.json").read_text())
    local = json.loads((tmp_path / "ev" / "local" / "eval.json").read_text())
    assert remote["num_samples"] == local["num_samples"] == 40
    assert remote["artifact"] == str(tiny_onnx) and remote["backend"] == local["backend"]
    assert abs(remote["top1"] - local["top1"]) <= 1 / 40  # same model and data; runtimes may differ by a tie
    assert (tmp_path / "ev" / label / "confusion.png").stat().st_size > 0
    assert (
        f"{label}: wrote ev/{label}/eval.json" in proc.stdout
        and "local: wrote ev/local/eval.json" in proc.stdout
    )
