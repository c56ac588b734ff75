"""Bad values, files and outputs on the command line: exit 2, one message naming the file, key
or value, no traceback, and no artifact or temp file left (the CLI-level half of the hardening
corpus; data, manifest and training cases have their own files here)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from edgetl.fileio import sha256_file

pytestmark = pytest.mark.slow  # ~20 subprocesses; CI runs it with the full suite


def edgetl(*args, cwd=None, timeout=300):
    env = {**os.environ, "EDGETL_QUIET": "1", "COLUMNS": "200", "EDGETL_DEBUG": ""}
    return subprocess.run(
        [sys.executable, "-m", "edgetl", *map(str, args)],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd,
    )


def refused(r, *needles):
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    assert "Traceback" not in r.stderr + r.stdout, r.stderr
    for n in needles:
        assert n in r.stderr, (n, r.stderr)


@pytest.fixture
def engine_without_tensorrt(tiny_onnx, tmp_path):
    """An engine file with its sidecar manifest, on a machine without TensorRT."""
    from edgetl.artifact_io import write_sidecar
    from edgetl.manifest import read_manifest

    engine = tmp_path / "m.engine"
    engine.write_bytes(b"\0" * 64)
    manifest = read_manifest(tiny_onnx).model_copy(update={"kind": "trt-engine"})
    write_sidecar(engine, manifest.to_json(), {"tensorrt": "10.0", "engine_sha256": sha256_file(engine)})
    return engine


def test_inputs_are_never_overwritten(tiny_onnx, tiny_checkpoint, tmp_path):
    before = sha256_file(tiny_onnx), sha256_file(tiny_checkpoint)
    refused(edgetl("quantize", tiny_onnx, "-o", tiny_onnx), str(tiny_onnx), "never overwrites an input")
    refused(edgetl("export", tiny_checkpoint, "-o", tiny_checkpoint), "never overwrites an input")
    assert (sha256_file(tiny_onnx), sha256_file(tiny_checkpoint)) == before


@pytest.mark.parametrize(
    "args, needles",
    [
        (("bench", "{onnx}", "--batch", "0"), ("batches",)),
        (("bench", "{onnx}", "--batch", "-1"), ("batches",)),
        (("bench", "{onnx}", "--batch", "one"), ("batches",)),
        (("eval", "{onnx}", "--data", "digits", "--batch-size", "0"), ("batch_size",)),
        (("predict", "{onnx}", "{onnx}", "-k", "0"), ("top-k",)),
        (("finetune", "--set", "epochs"), ("--set 'epochs'", "KEY=VALUE")),
        (("finetune", "--set", "a..b=1"), ("KEY=VALUE",)),
        (("finetune", "--set", "epochs=[1"), ("not a valid value",)),
        (("bench", "{onnx}", "--backend", "tflite"), ("unknown backend 'tflite'",)),
        (("pipeline", "--preset", "fashion-mnist", "--set", "name=../escape", "--print-config"), ("name",)),
    ],
)
def test_plain_bad_values(args, needles, tiny_onnx, tmp_path):
    args = [a.format(onnx=tiny_onnx) for a in args]
    refused(edgetl(*args, cwd=tmp_path), *needles)
    assert not (tmp_path / "bench").exists() and not list(tmp_path.glob("runs*"))


def test_nothing_usable_is_an_error_not_an_empty_success(engine_without_tensorrt, tiny_checkpoint, tmp_path):
    r = edgetl("bench", engine_without_tensorrt, "-o", tmp_path / "b")
    refused(r, "nothing to benchmark", "tensorrt")
    assert not (tmp_path / "b" / "bench.json").exists()
    import torch

    if not torch.cuda.is_available():
        r = edgetl("bench", tiny_checkpoint, "--device", "cuda", "--compute-only", "-o", tmp_path / "c")
        refused(r, "nothing was measured", "no CUDA device")


def test_a_missing_file_is_named_as_missing(tmp_path):
    r = edgetl("bench", tmp_path / "nope.engine", "-o", tmp_path / "b")
    refused(r, "nope.engine", "no such file")
    assert "not installed" not in r.stderr


def test_outputs_that_cannot_be_written_fail_before_any_work(tiny_checkpoint, tiny_onnx, tmp_path):
    a_file = tmp_path / "taken"
    a_file.write_text("x")
    refused(edgetl("eval", tiny_onnx, "--data", "digits", "--out", a_file), "is a file, not a folder")
    refused(edgetl("export", tiny_checkpoint, "-o", tmp_path), "is a folder")
    refused(edgetl("export", tiny_checkpoint, "-o", "/proc/edgetl/x.onnx"), "/proc/edgetl", "cannot write")


def test_non_utf8_config_is_named(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_bytes("arch: caf\xe9\n".encode("latin-1"))
    refused(edgetl("finetune", "--config", cfg), "c.yaml", "not UTF-8")


def test_labels_cannot_inject_markup_or_terminal_escapes(tiny_checkpoint, tmp_path):
    from safetensors.torch import load_file

    from edgetl.artifact_io import read_safetensors_manifest, save_safetensors
    from edgetl.manifest import Manifest

    m = Manifest.from_json(read_safetensors_manifest(tiny_checkpoint))
    labels = list(m.labels)
    labels[0], labels[1] = "[bold red]boom[/]", "\x1b[31mred\x1b[0m"
    bad = tmp_path / "labels.safetensors"
    save_safetensors(
        load_file(str(tiny_checkpoint)), m.model_copy(update={"labels": tuple(labels)}).to_json(), bad
    )
    r = edgetl("inspect", bad)
    assert r.returncode == 0, r.stderr
    assert "[bold red]boom[/]" in r.stdout and "\x1b" not in r.stdout and "\\x1b[31mred" in r.stdout


def test_debug_shows_the_traceback(tmp_path):
    r = edgetl("--debug", "inspect", tmp_path / "missing.onnx")
    assert r.returncode != 0 and "Traceback" in r.stderr
    refused(edgetl("inspect", tmp_path / "missing.onnx"), "missing.onnx")


def test_stale_quantize_work_folders_are_cleaned(tmp_path):
    from edgetl.quantize.ptq import WORK_PREFIX, clean_stale_work_dirs

    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    stale = tmp_path / f"{WORK_PREFIX}{dead.stdout.strip()}-abc"
    live = tmp_path / f"{WORK_PREFIX}{os.getpid()}-def"
    stale.mkdir()
    live.mkdir()
    assert clean_stale_work_dirs(tmp_path) == [stale]
    assert live.exists() and not stale.exists()


def test_ctrl_c_says_so_exits_130_and_leaves_no_artifact(tmp_path):
    import signal
    import time

    out = tmp_path / "m.safetensors"
    args = ["finetune", "--data", "digits", "--arch", "timm/test_efficientnet", "--no-pretrained"]
    args += ["--image-size", "16", "--epochs", "200", "--threads", "1", "-o", str(out)]
    env = {**os.environ, "EDGETL_QUIET": "1"}
    p = subprocess.Popen([sys.executable, "-m", "edgetl", *args], env=env, stderr=subprocess.PIPE, text=True)
    time.sleep(8)
    p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=120)
    assert p.returncode == 130 and "interrupted" in err and "Traceback" not in err, err
    assert not out.exists() and not list(tmp_path.glob(".m.safetensors.edgetl-tmp-*"))
