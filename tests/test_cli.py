import json
import os
import subprocess
import sys

import pytest

COMMANDS = [
    "finetune", "distill", "export", "quantize", "calib", "build", "eval", "bench", "predict", "inspect",
    "backends", "data", "pipeline",
]  # fmt: skip


def run_cli(*args, timeout=300):
    env = {**os.environ, "EDGETL_QUIET": "1", "COLUMNS": "200"}
    return subprocess.run(
        [sys.executable, "-m", "edgetl", *map(str, args)],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help(command):
    r = run_cli(command, "--help")
    assert r.returncode == 0 and "Usage" in r.stdout


def test_bad_data_path_is_a_clear_error_without_traceback(tmp_path):
    r = run_cli("finetune", "--data", tmp_path / "missing", "--epochs", "1")
    assert r.returncode == 2
    assert "missing" in r.stderr and "Traceback" not in r.stderr


def test_bad_config_key_names_the_key(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("arch: timm/test_efficientnet\nepoch: 3\n")
    r = run_cli("finetune", "--config", cfg)
    assert r.returncode == 2 and "epoch: unknown key" in r.stderr and "Traceback" not in r.stderr
    cfg.write_text("arch: [unclosed\n")
    r = run_cli("finetune", "--config", cfg)
    assert r.returncode == 2 and "c.yaml" in r.stderr and "not valid YAML" in r.stderr


def test_print_config_shows_defaults_and_overrides():
    r = run_cli("finetune", "--print-config", "--epochs", "3", "--set", "data.calib_size=128")
    assert r.returncode == 0
    assert "epochs: 3" in r.stdout and "calib_size: 128" in r.stdout and "strategy: full" in r.stdout


def test_inspect_eval_predict_on_a_checkpoint(tiny_checkpoint, tmp_path):
    r = run_cli("inspect", tiny_checkpoint)
    assert r.returncode == 0 and "preprocessing" in r.stdout and "fingerprint" in r.stdout
    r = run_cli("inspect", tiny_checkpoint, "--json")
    assert json.loads(r.stdout)["kind"] == "checkpoint"
    r = run_cli("eval", tiny_checkpoint, "--data", "digits", "--out", tmp_path / "ev")
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "ev" / "eval.json").exists() and (tmp_path / "ev" / "confusion.png").exists()
    from PIL import Image

    Image.new("L", (8, 8), 128).save(tmp_path / "x.png")
    r = run_cli("predict", tiny_checkpoint, tmp_path / "x.png", "--json", "-k", "2")
    assert r.returncode == 0 and len(json.loads(r.stdout)[0]["top"]) == 2
    r = run_cli("inspect", tmp_path / "x.png")
    assert r.returncode == 2 and "unknown artifact type" in r.stderr


def test_backends_lists_torch():
    r = run_cli("backends")
    assert r.returncode == 0 and "torch" in r.stdout


def test_distill_with_baseline_writes_report(tiny_checkpoint, tmp_path):
    out = tmp_path / "s.safetensors"
    r = run_cli(
        "distill",
        "--teacher",
        tiny_checkpoint,
        "--student",
        "edgetl/compact_cnn_s",
        "--image-size",
        "16",
        "--epochs",
        "1",
        "--threads",
        "2",
        "--baseline",
        "-o",
        out,
    )
    assert r.returncode == 0, r.stderr
    report = json.loads((tmp_path / "s.report.json").read_text())
    assert set(report) == {"teacher", "student (KD)", "student (no KD)"}
    assert report["student (KD)"]["macs"] < report["teacher"]["macs"]
    from edgetl.manifest import read_manifest

    assert read_manifest(tmp_path / "s.no-kd.safetensors").provenance.config["kd_weight"] == 0.0


def test_pipeline_cli_print_config_and_bad_force():
    r = run_cli("pipeline", "--preset", "fashion-mnist", "--print-config", "--set", "student.epochs=3")
    assert r.returncode == 0 and "label_smoothing" in r.stdout and "epochs: 3" in r.stdout
    r = run_cli("pipeline", "--preset", "fashion-mnist", "--force", "everything")
    assert r.returncode == 2 and "stages are" in r.stderr
    r = run_cli("pipeline")
    assert r.returncode == 2 and "--preset" in r.stderr


@pytest.mark.slow
def test_a_log_file_gets_one_plain_line_per_epoch(tmp_path):
    """stderr redirected to a file (not a terminal): no progress bars, one line per epoch."""
    env = {**os.environ, "EDGETL_QUIET": "", "COLUMNS": "200"}
    out = tmp_path / "m.safetensors"
    args = ["finetune", "--data", "digits", "--arch", "timm/test_efficientnet", "--no-pretrained"]
    args += ["--image-size", "16", "--epochs", "2", "--threads", "2", "-o", str(out)]
    with open(tmp_path / "log.txt", "w") as log:
        r = subprocess.run(
            [sys.executable, "-m", "edgetl", *args], env=env, stderr=log, stdout=log, timeout=300
        )
    text = (tmp_path / "log.txt").read_text()
    assert r.returncode == 0, text
    assert "epoch 1/2: train loss" in text and "epoch 2/2: train loss" in text and "val top-1" in text
    assert "\r" not in text and "\x1b[" not in text  # no bar redraws or colour codes in a log
