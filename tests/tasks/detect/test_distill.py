"""Detector distillation: the near-object mask on a hand-built case, the masked imitation loss,
gradients reaching the student and never the teacher, KD settings checked against the teacher's
task before any work, and (slow tier) a tiny teacher distilled into a narrower student at a lower
resolution with --baseline, then exported."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
import torch

from edgetl.errors import ConfigError
from edgetl.tasks.detect.distill import (
    Distillation,
    NeckAdapters,
    imitation_loss,
    imitation_mask,
    to_grid,
)
from edgetl.tasks.detect.model import STRIDES, DetectorConfig, build_detector
from tests.conftest import TINY_ARCH
from tests.tasks.detect.cli import run_edgetl

BUILTIN = "builtin:fashion-on-photos"
SIZES = [(8, 8), (4, 4), (2, 2)]  # a 64 px input at strides 8/16/32


def _on(mask: torch.Tensor) -> set[tuple[int, ...]]:
    return {tuple(int(v) for v in p) for p in torch.nonzero(mask)}


def test_the_mask_holds_exactly_the_locations_near_an_object():
    # image 0: an 8 px box centred at (24, 24); enlarged 1.5x it spans 18..30 in x and y.
    # image 1: no object. image 2: a box in the top-right corner, centre (60, 4) -> 54..66, -2..10.
    boxes = [torch.tensor([[20.0, 20, 28, 28]]), torch.zeros((0, 4)), torch.tensor([[56.0, 0, 64, 8]])]
    s8, s16, s32 = imitation_mask(boxes, SIZES, STRIDES)
    # stride 8: centres 4, 12, 20, 28, ...: 20 and 28 lie in 18..30 (rows and columns 2, 3)
    assert _on(s8) == {(0, 2, 2), (0, 2, 3), (0, 3, 2), (0, 3, 3), (2, 0, 7)}
    # stride 16: centres 8, 24, 40, 56: only 24 for image 0; image 2 has x 56 and y 8
    assert _on(s16) == {(0, 1, 1), (2, 0, 3)}
    # stride 32: centres 16, 48 lie in neither box: each box keeps the cell holding its centre
    assert _on(s32) == {(0, 0, 0), (2, 0, 1)}


def test_imitation_is_zero_on_equal_features_and_counts_only_masked_locations():
    torch.manual_seed(0)
    teacher = [torch.randn(2, 4, h, w) for h, w in SIZES]
    masks = imitation_mask([torch.tensor([[20.0, 20, 28, 28]]), torch.zeros((0, 4))], SIZES, STRIDES)
    n_masked = sum(int(m.sum()) for m in masks)
    assert imitation_loss([t.clone() for t in teacher], teacher, masks) == 0
    off = [t.clone() for t in teacher]
    off[0][1] += 5.0  # image 1 has no object: nothing of it is masked
    assert imitation_loss(off, teacher, masks) == 0
    near = [t.clone() for t in teacher]
    near[0][0, :, 2, 2] += 1.0  # one masked location, every channel 1 away
    assert imitation_loss(near, teacher, masks).item() == pytest.approx(1.0 / n_masked)

    # through the adapters: identity 1x1 convs map the student's maps onto the teacher's exactly
    adapters = NeckAdapters(4, 4, 3)
    for conv in adapters.convs:
        torch.nn.init.zeros_(conv.bias)
        with torch.no_grad():
            conv.weight.copy_(torch.eye(4).reshape(4, 4, 1, 1))
    assert imitation_loss(adapters(teacher), teacher, masks) == 0
    assert imitation_loss(adapters(near), teacher, masks) > 0


def test_teacher_maps_are_area_averaged_onto_the_student_grid():
    fine = torch.arange(16.0).reshape(1, 1, 4, 4)
    (out,) = to_grid([fine], [(2, 2)])
    assert out.flatten().tolist() == [2.5, 4.5, 10.5, 12.5]  # each 2x2 block's mean
    assert to_grid([fine], [(4, 4)])[0] is fine


def _detector(width: int, seed: int = 0):
    torch.manual_seed(seed)
    model, _ = build_detector(DetectorConfig(architecture=TINY_ARCH, num_classes=3, width=width))
    return model


def _weights(**kw):
    return SimpleNamespace(
        **{"temperature": 1.0, "alpha": 1.0, "score_kd_weight": 1.0, "imitation_weight": 1.0, **kw}
    )


def test_kd_gradients_reach_the_student_and_the_adapters_never_the_teacher():
    teacher, student = _detector(32, seed=1), _detector(16, seed=2)
    teacher.eval()  # as the Distiller runs it; its parameters still require grad here
    kd = Distillation(teacher, student, _weights(alpha=0.0))  # the KD terms alone
    targets = [
        (torch.tensor([[4.0, 4, 20, 20]]), torch.tensor([1])),
        (torch.tensor([[10.0, 2, 30, 14]]), torch.tensor([2])),
    ]
    x_teacher, x_student = torch.rand(2, 3, 64, 64), torch.rand(2, 3, 32, 32)  # teacher at 2x
    loss = kd.loss(student(x_student), targets, kd.teacher_targets(x_teacher))
    assert loss.item() > 0
    loss.backward()
    assert all(p.grad is None for p in teacher.parameters())
    grads = [p.grad for p in student.parameters() if p.grad is not None]
    assert grads and any(g.abs().sum() > 0 for g in grads)
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in kd.adapters.parameters())
    assert not any(name.startswith("adapter") for name, _ in student.named_parameters())


def test_score_kd_is_zero_for_a_student_equal_to_its_teacher():
    teacher, student = _detector(16, seed=3), _detector(16, seed=3)
    teacher.eval(), student.eval()
    kd = Distillation(teacher, student, _weights(alpha=0.0, imitation_weight=0.0))
    x = torch.rand(2, 3, 64, 64)
    targets = [(torch.tensor([[4.0, 4, 20, 20]]), torch.tensor([1]))] * 2
    assert kd.loss(student(x), targets, kd.teacher_targets(x)).item() == pytest.approx(0.0, abs=1e-7)
    off = Distillation(teacher, student, _weights(alpha=0.0, score_kd_weight=0.0, imitation_weight=0.0))
    assert not off.uses_teacher and off.teacher_targets(x) is None and off.modules() == []


def _teacher_checkpoint(path, quality="centerness"):
    """A detector teacher's checkpoint (untrained: the config checks read only its manifest)."""
    from edgetl.manifest import InputSpec, Manifest, ModelSpec
    from edgetl.models.checkpoint import save_checkpoint
    from edgetl.provenance import make_provenance
    from edgetl.tasks.detect.training import build_model, contract

    spec = ModelSpec(
        architecture=TINY_ARCH,
        num_classes=3,
        head="anchor-free",
        head_options={"width": 32, "quality": quality},
    )
    model, _ = build_model(spec)
    manifest = Manifest(
        kind="checkpoint",
        task="detect",
        model=spec,
        labels=("a", "b", "c"),
        input=InputSpec(shape=(-1, 3, 64, 64)),
        preprocessing=contract(TINY_ARCH, 64, "x"),
        provenance=make_provenance("finetune"),
    )
    save_checkpoint(model, manifest, path)
    return path


def test_a_detector_teacher_makes_a_detector_student_with_detection_kd_defaults(tmp_path):
    from edgetl.train.config import DistillConfig
    from edgetl.train.distill import no_kd_twin, with_teacher_task

    teacher = _teacher_checkpoint(tmp_path / "det.safetensors", quality="iou")
    cfg = DistillConfig(
        teacher=teacher, arch=TINY_ARCH, head_options={"width": 16}, output=tmp_path / "s.safetensors"
    )
    assert (cfg.task, cfg.head) == ("detect", "anchor-free")  # from the teacher, before any work
    got = with_teacher_task(cfg)
    assert (got.temperature, got.alpha, got.score_kd_weight, got.imitation_weight) == (1.0, 1.0, 1.0, 1.0)
    assert got.kd_weight is None and got.head_options == {"width": 16, "quality": "iou"}  # the teacher's
    twin = no_kd_twin(got)
    assert (twin.score_kd_weight, twin.imitation_weight, twin.kd_weight) == (0.0, 0.0, None)
    assert twin.output.name == "s.no-kd.safetensors" and not twin.baseline


def test_kd_settings_of_the_other_task_are_refused_by_name(tmp_path, tiny_checkpoint):
    from edgetl.train.config import DistillConfig
    from edgetl.train.distill import with_teacher_task

    det = _teacher_checkpoint(tmp_path / "det.safetensors")
    out = tmp_path / "s.safetensors"
    for key, value in (("kd_weight", 0.5), ("hint_teacher_layer", "backbone.blocks.1")):
        kw = {key: value} if key == "kd_weight" else {key: value, "hint_student_layer": "backbone.blocks.1"}
        with pytest.raises(ConfigError, match=rf"{key} .*only a 'classify' teacher takes it.*Drop {key}"):
            with_teacher_task(DistillConfig(teacher=det, arch=TINY_ARCH, output=out, **kw))
    for key in ("score_kd_weight", "imitation_weight"):
        with pytest.raises(
            ConfigError, match=rf"{key} 0.5: only a 'detect' teacher takes it.*'classify' model"
        ):
            with_teacher_task(DistillConfig(teacher=tiny_checkpoint, output=out, **{key: 0.5}))
    with pytest.raises(ConfigError, match=r"head_options.quality 'iou'.*'centerness'"):
        with_teacher_task(
            DistillConfig(teacher=det, arch=TINY_ARCH, head_options={"quality": "iou"}, output=out)
        )


def test_bad_kd_weights_and_head_options_fail_when_the_config_is_built(tmp_path):
    from edgetl.config import build_config
    from edgetl.train.config import DistillConfig

    det = _teacher_checkpoint(tmp_path / "det.safetensors")
    base = {"teacher": str(det), "output": str(tmp_path / "s.safetensors")}
    with pytest.raises(ConfigError, match="imitation_weight: Input should be greater than or equal to 0"):
        build_config(DistillConfig, base, {"imitation_weight": -1}, "file")
    with pytest.raises(ConfigError, match="a detector takes"):
        build_config(DistillConfig, base, {"head_options": {"widht": 16}}, "file")


@pytest.mark.slow
def test_a_tiny_detector_distilled_at_a_lower_resolution_with_a_baseline(tmp_path):
    """teacher (64 px, neck 32) -> student (32 px, neck 16) with --baseline: the student's
    manifest has both val mAPs, the teacher's sha256 and both MACs, its file holds no adapter,
    the comparison report has all three models, and the student exports to ONNX."""
    from edgetl.data.dataset import DataConfig
    from edgetl.fileio import sha256_file
    from edgetl.manifest import read_manifest
    from edgetl.train.config import FinetuneConfig
    from edgetl.train.finetune import finetune

    teacher = tmp_path / "det.safetensors"
    data = DataConfig(source=BUILTIN, limit_train=16, limit_val=8, limit_test=8)
    finetune(
        FinetuneConfig(
            data=data, arch=TINY_ARCH, pretrained=False, image_size=64, head_options={"width": 32}, epochs=1,
            batch_size=8, threads=2, output=teacher,
        ),
        quiet=True,
    )  # fmt: skip
    student = tmp_path / "s.safetensors"
    run_edgetl(
        "distill", "--teacher", teacher, "--student", TINY_ARCH, "--pretrained", "false",
        "--image-size", "32",
        "--set", "head_options.width=16", "--limit-train", "16", "--limit-val", "8", "--limit-test", "8",
        "--epochs", "1", "--batch-size", "8", "--threads", "2", "--baseline", "-o", student, cwd=tmp_path,
    )  # fmt: skip
    m = read_manifest(student)
    assert m.task == "detect" and m.preprocessing.input_size == (32, 32)
    assert m.provenance.parent_sha256 == sha256_file(teacher)
    config = m.provenance.config
    assert (config["score_kd_weight"], config["imitation_weight"], config["temperature"]) == (1.0, 1.0, 1.0)
    metrics = m.metrics
    assert {"val_map50_95", "baseline_val_map50_95", "teacher_val_map50_95", "baseline_test_map50_95"} <= set(
        metrics
    )
    assert 0 < metrics["macs"] < metrics["teacher_macs"]
    assert any(d.startswith("KD bought: val mAP") for d in m.decisions)
    baseline = read_manifest(tmp_path / "s.no-kd.safetensors")
    assert baseline.metrics["val_map50_95"] == metrics["baseline_val_map50_95"]
    assert baseline.provenance.config["imitation_weight"] == 0.0
    from safetensors.torch import load_file

    names = list(load_file(str(student)))
    assert names and not [k for k in names if k.startswith(("extra", "convs", "adapter"))]  # not shipped
    report = json.loads((tmp_path / "s.report.json").read_text())
    assert set(report) == {"teacher", "student (KD)", "student (no KD)"}
    assert report["student (KD)"]["val_map50_95"] == metrics["val_map50_95"]

    onnx_path = tmp_path / "s.onnx"
    run_edgetl("export", student, "-o", onnx_path, "--set", "verify_images=8", cwd=tmp_path)
    parity = read_manifest(onnx_path).metrics["parity"]
    assert parity["detection_agreement"] == 1.0
