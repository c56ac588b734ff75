import json

import pytest
from safetensors.torch import save_file

from edgetl.errors import ModelError
from edgetl.fileio import atomic_path
from edgetl.manifest import Manifest, read_manifest


def test_checkpoint_manifest_roundtrip(tiny_checkpoint):
    m = read_manifest(tiny_checkpoint)
    assert m.kind == "checkpoint" and m.schema_version == 1
    assert m.labels == tuple(str(i) for i in range(10))
    assert m.input.shape == (-1, 3, 32, 32)
    assert m.preprocessing.input_size == (32, 32) and m.preprocessing.grey_to_rgb
    prov = m.provenance
    assert prov.stage == "finetune" and prov.config["arch"] == "timm/test_efficientnet"
    assert set(prov.data["fingerprints"]) == {"train", "val", "test", "calib"}
    assert "torch" in prov.tool_versions and "timm" in prov.tool_versions
    assert 0 <= m.metrics["test"]["top1"] <= 1 and len(m.history) == 2
    assert Manifest.from_json(m.to_json()) == m


def test_plain_safetensors_and_bad_manifest_are_clear_errors(tmp_path):
    import torch

    plain = tmp_path / "plain.safetensors"
    save_file({"w": torch.zeros(2)}, str(plain))
    with pytest.raises(ModelError, match="without an edgetl manifest"):
        read_manifest(plain)
    with pytest.raises(ModelError, match="schema_version"):
        Manifest.from_json(json.dumps({"schema_version": 99}), "x")
    (tmp_path / "junk.safetensors").write_bytes(b"garbage")
    with pytest.raises(ModelError, match="not a readable safetensors"):
        read_manifest(tmp_path / "junk.safetensors")
    with pytest.raises(ModelError, match="no such file"):
        read_manifest(tmp_path / "nope.safetensors")


def test_atomic_write_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "out.bin"
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_bytes(b"half")
        raise RuntimeError("interrupted")
    assert not target.exists() and list(tmp_path.iterdir()) == []
    with atomic_path(target) as tmp:
        tmp.write_bytes(b"whole")
    assert target.read_bytes() == b"whole" and len(list(tmp_path.iterdir())) == 1
