"""Detection through the stages: the task is inferred from detection data, boxes move with the
augmentation, predict renders and draws boxes in the image's own pixels, and (slow tier) a tiny
detector is fine-tuned, resumed, evaluated, exported and predicted with end to end."""

from __future__ import annotations

import json

import numpy as np
import pytest

from edgetl.data.augment import AugmentParams
from edgetl.tasks.detect.targets import BoxTarget
from tests.conftest import TINY_ARCH
from tests.tasks.detect.cli import run_edgetl

BUILTIN = "builtin:fashion-on-photos"


def test_detection_data_makes_the_task_detect_and_the_head_anchor_free():
    from edgetl.train.config import FinetuneConfig

    cfg = FinetuneConfig(data={"source": BUILTIN})
    assert (cfg.task, cfg.head) == ("detect", "anchor-free")
    assert FinetuneConfig().task == "classify"
    with pytest.raises(ValueError, match="takes the anchor-free head"):
        FinetuneConfig(data={"source": BUILTIN}, head="mlp")
    with pytest.raises(ValueError, match="head_options configure a detector"):
        FinetuneConfig(head_options={"width": 64})
    with pytest.raises(ValueError, match="a detector takes"):  # before any data is read
        FinetuneConfig(data={"source": BUILTIN}, head_options={"towr": "gn"})


def test_boxes_move_with_the_flip_and_the_crop():
    from edgetl.data.augment import apply_augment
    from edgetl.tasks.detect.training import augment_targets

    h = w = 32
    pixels = np.zeros((1, 3, h, w), np.uint8)
    pixels[0, :, 12:18, 10:16] = 255  # an object at x 10..16, y 12..18, away from the padding
    labels = np.empty(1, dtype=object)
    labels[0] = BoxTarget(np.array([[10, 12, 16, 18]], np.float32), np.array([3]))
    for mode, params in (
        ("flip", AugmentParams(np.array([0.5]), np.array([0.5]), np.array([True]))),
        ("crop", AugmentParams(np.array([0.0]), np.array([1.0]), np.array([False]))),
        ("crop-flip", AugmentParams(np.array([0.25]), np.array([0.75]), np.array([True]))),
    ):
        out = apply_augment(pixels, mode, params)[0, 0]
        box = augment_targets(labels, mode, params, (h, w))[0]
        ys, xs = np.nonzero(out == 255)
        want = [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]  # pixel-edge coordinates
        assert box.classes.tolist() == [3]
        np.testing.assert_allclose(box.boxes[0], want, atol=1e-4, err_msg=mode)


def test_a_box_cropped_out_of_the_image_is_dropped():
    from edgetl.tasks.detect.training import augment_targets

    labels = np.empty(1, dtype=object)
    labels[0] = BoxTarget(np.array([[0, 0, 2, 2], [10, 10, 20, 20]], np.float32), np.array([1, 2]))
    params = AugmentParams(np.array([1.0]), np.array([1.0]), np.array([False]))  # shift 4 px up-left
    box = augment_targets(labels, "crop", params, (32, 32))[0]
    assert box.classes.tolist() == [2]


def test_render_describe_and_draw_a_detection():
    from PIL import Image

    from edgetl.tasks.detect.render import colour, describe, draw, render

    pred = (np.array([[10, 12, 40, 50], [0, 0, 5, 5]], np.float32), np.array([0.9, 0.2]), np.array([1, 0]))
    result = render(pred, ["cat", "dog"], k=5, min_score=0.5)
    assert result == {
        "detections": [{"label": "dog", "class": 1, "score": 0.9, "box": [10.0, 12.0, 40.0, 50.0]}]
    }
    assert "dog" in describe(result)[0] and "90.00%" in describe(result)[0]
    img = Image.new("RGB", (64, 64), (0, 0, 0))
    drawn = np.asarray(draw(img, result, ["cat", "dog"]))
    assert tuple(drawn[40, 40]) == colour(1)  # the right edge of the box, in the class colour
    assert tuple(drawn[30, 25]) == (0, 0, 0)  # inside the box: untouched
    assert np.asarray(img).max() == 0  # the input image is not drawn on


def test_render_keeps_the_decode_order_of_tied_scores():
    """Tied scores (letterbox padding gives identical locations) stay in decode's order, the
    order deploy/cpp's edgetl_detect prints, not reversed."""
    from edgetl.tasks.detect.render import render

    boxes = np.array([[0, 0, 1, 1], [0, 0, 2, 2], [0, 0, 3, 3]], np.float32)
    pred = (boxes, np.array([0.5, 0.5, 0.7], np.float32), np.array([0, 1, 0]))
    assert [d["box"][2] for d in render(pred, ["a", "b"], k=5)["detections"]] == [3.0, 1.0, 2.0]


def test_predict_save_refuses_an_input_image_and_a_non_png(tmp_path):
    from edgetl.errors import EdgetlError
    from edgetl.predict import _save_paths

    img = tmp_path / "a.png"
    img.write_bytes(b"")
    with pytest.raises(EdgetlError, match="never overwrites an input"):
        _save_paths(img, [img])
    with pytest.raises(EdgetlError, match="give a .png"):
        _save_paths(tmp_path / "out.jpg", [img])
    assert _save_paths(tmp_path / "drawn", [img, tmp_path / "b.png"])[1] == tmp_path / "drawn" / "b.png"


def test_detector_manifest_checks_name_the_mismatch():
    from types import SimpleNamespace

    from edgetl.tasks.detect import checks

    m = SimpleNamespace(
        labels=("a", "b"),
        outputs=("boxes", "scores"),
        model=SimpleNamespace(num_classes=2, head="anchor-free", head_options={}),
    )
    assert checks.check_graph(m, {"boxes": (1, 100, 4), "scores": (1, 100, 2)}) == []
    assert "scores 3 classes" in checks.check_graph(m, {"boxes": (1, 100, 4), "scores": (1, 100, 3)})[0][2]
    assert checks.check_weights(m, {"head.pred.pred.0.weight": (7, 96, 1, 1)}) == []  # 2 + 4 + centerness
    assert "scores 3 classes" in checks.check_weights(m, {"head.pred.pred.0.weight": (8, 96, 1, 1)})[0][2]


@pytest.mark.slow
def test_a_tiny_detector_end_to_end(tmp_path):
    """finetune (resumed after one epoch), eval (mAP keys, PR plot), export (parity), eval of the
    ONNX equal to the checkpoint's, predict with boxes in the image's pixels and a drawn PNG."""
    ckpt = tmp_path / "det.safetensors"
    data = ["--data", BUILTIN, "--set", "data.limit_train=48", "--set", "data.limit_val=16"]
    common = [*data, "--arch", TINY_ARCH, "--no-pretrained", "--image-size", "64", "--batch-size", "8"]
    run_edgetl("finetune", *common, "--epochs", "1", "-o", ckpt, cwd=tmp_path)
    run_edgetl("finetune", *common, "--epochs", "2", "--resume", "-o", ckpt, cwd=tmp_path)
    m = json.loads(run_edgetl("inspect", ckpt, "--json", cwd=tmp_path).stdout)
    assert m["task"] == "detect" and m["outputs"] == ["boxes", "scores"]
    assert m["preprocessing"]["fit"] == "letterbox" and m["model"]["head"] == "anchor-free"
    assert [h["epoch"] for h in m["history"]] == [1, 2] and "val_map50_95" in m["metrics"]

    run_edgetl(
        "eval", ckpt, "--data", BUILTIN, "--limit-test", "24", "-o", tmp_path / "ev_ckpt", cwd=tmp_path
    )
    ev = json.loads((tmp_path / "ev_ckpt" / "eval.json").read_text())
    assert {"map50_95", "map50", "ar100", "per_class"} <= set(ev) and ev["num_images"] == 24
    assert (tmp_path / "ev_ckpt" / "pr_curves.png").read_bytes()[:4] == b"\x89PNG"

    onnx_path = tmp_path / "det.onnx"
    run_edgetl("export", ckpt, "-o", onnx_path, cwd=tmp_path)
    parity = json.loads(run_edgetl("inspect", onnx_path, "--json", cwd=tmp_path).stdout)["metrics"]["parity"]
    assert parity["max_scaled_diff"] <= 1e-4 and parity["detection_agreement"] == 1.0
    run_edgetl(
        "eval", onnx_path, "--data", BUILTIN, "--limit-test", "24", "-o", tmp_path / "ev_onnx", cwd=tmp_path
    )
    ev_onnx = json.loads((tmp_path / "ev_onnx" / "eval.json").read_text())
    assert abs(ev_onnx["map50_95"] - ev["map50_95"]) < 1e-3

    from edgetl.tasks.detect.sources import open_detection_source

    source = open_detection_source(BUILTIN)
    image = tmp_path / "img.png"
    source.load(0).resize((200, 100)).save(image)  # not square: letterboxed, boxes map back
    r = run_edgetl(
        "predict", onnx_path, image, "--json", "--score", "0", "--save", tmp_path / "drawn.png", cwd=tmp_path
    )
    got = json.loads(r.stdout)[0]["detections"]
    assert len(got) == 5 and (tmp_path / "drawn.png").read_bytes()[:4] == b"\x89PNG"  # top-k 5 of 100
    # the best box by hand: 200x100 letterboxed into 64x64 is scale 0.32, 16 px of padding above
    import onnxruntime as ort

    from edgetl.data.preprocess import load_image, preprocess
    from edgetl.manifest import read_manifest

    x = preprocess([load_image(image)], read_manifest(onnx_path).preprocessing)
    boxes, scores = ort.InferenceSession(str(onnx_path)).run(["boxes", "scores"], {"input": x})
    a, c = np.unravel_index(np.argmax(scores[0]), scores[0].shape)
    want = np.clip((boxes[0, a] - [0, 16, 0, 16]) / 0.32, 0, [200, 100, 200, 100])
    assert got[0]["class"] == c and abs(got[0]["score"] - scores[0, a, c]) < 1e-5
    np.testing.assert_allclose(got[0]["box"], want, atol=0.01)


@pytest.mark.slow
def test_a_detector_linear_probe_caches_its_multi_scale_features(tmp_path):
    """strategy linear on a detector: the frozen backbone's three maps are extracted once, stored
    as one safetensors file per split, and a second run trains on the stored maps to the same
    weights."""
    from safetensors import safe_open

    from edgetl.data.dataset import DataConfig
    from edgetl.train.config import FinetuneConfig
    from edgetl.train.finetune import finetune

    def run(out):
        cfg = FinetuneConfig(
            data=DataConfig(source=BUILTIN, limit_train=16, limit_val=8),
            arch=TINY_ARCH, pretrained=False, image_size=64, strategy="linear", epochs=1, batch_size=8,
            eval_test=False, threads=2, output=out,
        )  # fmt: skip
        return finetune(cfg, quiet=True, feature_cache=tmp_path / "cache")

    first = run(tmp_path / "a.safetensors")
    files = sorted((tmp_path / "cache").glob("features-*.safetensors"))
    assert len(files) == 2  # train and val
    with safe_open(str(files[0]), "pt") as f:
        assert sorted(f.keys()) == ["features.0", "features.1", "features.2"]
    stamp = [p.stat().st_mtime_ns for p in files]
    second = run(tmp_path / "b.safetensors")
    assert [p.stat().st_mtime_ns for p in files] == stamp  # read, not rewritten
    assert first.manifest.metrics["val_map50_95"] == second.manifest.metrics["val_map50_95"]
    from safetensors.torch import load_file

    a, b = load_file(str(first.path)), load_file(str(second.path))
    assert all((a[k] == b[k]).all() for k in a)
