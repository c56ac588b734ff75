import pytest
import torch

from edgetl.errors import ConfigError, ModelError
from edgetl.fileio import sha256_file
from edgetl.manifest import read_manifest
from edgetl.stages.distill import compare as compare_report
from edgetl.tasks.classify.training import distill_loss as kd_loss
from edgetl.train.distill import DistillConfig, distill


def test_kd_loss_matches_hinton_formula():
    torch.manual_seed(0)
    s, t = torch.randn(8, 5), torch.randn(8, 5)
    y = torch.randint(0, 5, (8,))
    T, alpha = 3.0, 0.7
    p_t = torch.softmax(t / T, 1)
    kl = (p_t * (torch.log(p_t) - torch.log_softmax(s / T, 1))).sum(1).mean() * T * T
    expected = kl + alpha * torch.nn.functional.cross_entropy(s, y)
    assert torch.allclose(kd_loss(s, t, y, T, alpha, 1.0, 0.0), expected, atol=1e-6)
    assert kd_loss(t, t, y, T, 0.0, 1.0, 0.0).abs() < 1e-6  # identical logits: no KD loss


def _cfg(teacher, tmp_path, **kw):
    base = dict(
        teacher=teacher,
        arch="edgetl/compact_cnn_s",
        image_size=16,
        epochs=2,
        lr=3e-3,
        threads=2,
        output=tmp_path / "student.safetensors",
    )
    return DistillConfig(**{**base, **kw})


def test_distill_records_teacher_and_student_contract(tiny_checkpoint, tmp_path):
    r = distill(_cfg(tiny_checkpoint, tmp_path), quiet=True)
    m = read_manifest(r.path)
    teacher = read_manifest(tiny_checkpoint)
    assert m.provenance.stage == "distill"
    assert m.provenance.parent_sha256 == sha256_file(tiny_checkpoint)
    assert m.provenance.config["temperature"] == 4.0 and m.provenance.config["alpha"] == 0.5
    assert m.preprocessing.input_size == (16, 16) != teacher.preprocessing.input_size
    assert m.labels == teacher.labels and m.metrics["test"]["top1"] > 0.5
    assert m.provenance.data["fingerprints"]["test"] == teacher.provenance.data["fingerprints"]["test"]


def test_cached_teacher_logits_and_hint_distillation(tiny_checkpoint, tmp_path):
    from edgetl.data.dataset import DataConfig

    r = distill(_cfg(tiny_checkpoint, tmp_path, data=DataConfig(source="digits", augment="none")), quiet=True)
    assert r.manifest.metrics["test"]["top1"] > 0.5
    r = distill(
        _cfg(
            tiny_checkpoint,
            tmp_path,
            hint_teacher_layer="backbone.blocks.3",
            hint_student_layer="backbone.stages.2",
        ),
        quiet=True,
    )
    from safetensors.torch import load_file

    assert not any("extra" in k or "proj" in k for k in load_file(str(r.path)))  # projection not shipped
    assert "hint backbone.stages.2 -> backbone.blocks.3" in r.manifest.decisions[0]


def test_bad_hint_layer_and_wrong_data_are_clear(tiny_checkpoint, tmp_path):
    with pytest.raises(ConfigError, match="not a module of the student"):
        distill(
            _cfg(
                tiny_checkpoint,
                tmp_path,
                hint_teacher_layer="backbone.blocks.3",
                hint_student_layer="backbone.nope",
            ),
            quiet=True,
        )
    from edgetl.data.dataset import DataConfig
    from tests.conftest import write_shape_folder

    folder = write_shape_folder(tmp_path / "shapes")
    with pytest.raises(ModelError, match="teacher labels"):
        distill(_cfg(tiny_checkpoint, tmp_path, data=DataConfig(source=str(folder))), quiet=True)
    with pytest.raises(ValueError, match="both"):
        _cfg(tiny_checkpoint, tmp_path, hint_teacher_layer="backbone.blocks.3")


def test_compare_report_counts(tiny_checkpoint):
    rows = compare_report({"teacher": tiny_checkpoint}, threads=1)
    r = rows["teacher"]
    assert r["params"] > 0 and r["macs"] > 0 and r["torch_cpu_p50_ms"] > 0 and r["file_mb"] > 0
    assert r["test_top1"] == read_manifest(tiny_checkpoint).metrics["test"]["top1"]


def test_a_torchvision_policy_reaches_student_and_teacher(tiny_checkpoint, tmp_path):
    from edgetl.data.dataset import DataConfig
    from edgetl.data.loader import OriginalAugment
    from edgetl.train.distill import Distiller

    data = DataConfig(source="digits", limit_train=96, augment="rrc-flip-randaug", cache="none", workers=1)
    cfg = _cfg(tiny_checkpoint, tmp_path, data=data, epochs=1)
    r = distill(cfg, quiet=True)
    assert r.manifest.provenance.config["data"]["augment"] == "rrc-flip-randaug"
    from edgetl.data.dataset import load_data

    kd = Distiller(cfg, torch.device("cpu"))
    kd.setup(load_data(data), None, None, data.augment, True)  # no hints: the student is not read
    assert kd.cached_logits is None  # augmented: the teacher runs on every batch
    assert kd.teacher_pixels.dataset.augment == OriginalAugment("rrc-flip-randaug", cfg.seed)
