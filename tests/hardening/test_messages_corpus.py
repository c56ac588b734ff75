"""Messages that used to name the wrong problem: export given an ONNX model, distill's
--print-config showing a data source the run does not use. (A zip torch file with pickled code
is in test_train_corpus.py, quantize --labels in test_options_corpus.py, a binary targets file
in test_yaml_corpus.py.)"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import yaml

from edgetl.errors import ModelError


@pytest.mark.parametrize("precision", ["fp16", "fp32"])
def test_export_of_an_onnx_says_it_takes_a_checkpoint(precision, tiny_onnx, tiny_checkpoint, tmp_path):
    from edgetl.export import ExportConfig, export

    out = tmp_path / "o.onnx"
    with pytest.raises(ModelError) as e:
        export(ExportConfig(artifact=tiny_onnx, output=out, precision=precision))
    msg = str(e.value)
    assert msg.startswith(f"{tiny_onnx}: an ONNX model; export takes a checkpoint"), msg
    assert f"the checkpoint it was exported from, {tiny_checkpoint}" in msg, msg
    assert ("--precision fp16" in msg) == (precision == "fp16"), msg
    assert "safetensors file (" not in msg and list(tmp_path.iterdir()) == []


def test_export_of_a_renamed_onnx_is_recognised(tiny_onnx, tmp_path):
    from edgetl.export import ExportConfig, export

    renamed = tmp_path / "m.pt"
    renamed.write_bytes(tiny_onnx.read_bytes())
    with pytest.raises(ModelError, match=r"m\.pt: an ONNX model; export takes a checkpoint"):
        export(ExportConfig(artifact=renamed, output=tmp_path / "o.onnx"))


@pytest.mark.slow  # a subprocess importing the training stack (~3 s)
def test_distill_print_config_shows_the_teachers_data(tiny_checkpoint, tmp_path):
    env = {**os.environ, "EDGETL_QUIET": "1", "EDGETL_DEBUG": ""}

    def shown(*extra: str) -> dict:
        args = [sys.executable, "-m", "edgetl", "distill", "--teacher", str(tiny_checkpoint), *extra]
        r = subprocess.run([*args, "--print-config"], capture_output=True, text=True, env=env, cwd=tmp_path)
        assert r.returncode == 0, r.stderr
        return yaml.safe_load(r.stdout)["data"]

    assert shown()["source"] == "digits"  # what the teacher was trained on, not the default
    assert shown("--data", "fashion-mnist")["source"] == "fashion-mnist"  # a given source wins
    assert list(tmp_path.iterdir()) == []
