"""The streamed input pipeline: seeded order and augmentation, shards, cache choice, workers'
errors, and streamed training giving the same weights as training on in-RAM pixels."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from edgetl.data.augment import ORIGINAL_IMAGE_MODES, crop_flip_original
from edgetl.data.cache_choice import choose_cache, ram_budget
from edgetl.data.dataset import DataConfig, load_data, results_view
from edgetl.data.loader import OriginalAugment, StreamedPixels, epoch_batches, epoch_order, shard
from edgetl.data.sources import image_folder
from edgetl.errors import ConfigError, DataError
from edgetl.manifest import PreprocessContract
from edgetl.train.config import FinetuneConfig
from edgetl.train.finetune import finetune
from tests.conftest import TINY_ARCH

CONTRACT = PreprocessContract(input_size=(24, 24), resize=24)
GIB = 1024**3


def test_epoch_order_is_a_pure_function_of_seed_and_epoch():
    a, rng_a = epoch_order(3, 5, 100)
    b, rng_b = epoch_order(3, 5, 100)
    assert np.array_equal(a, b) and sorted(a) == list(range(100))
    assert rng_a.random() == rng_b.random()  # the augmentation draws that follow agree too
    assert not np.array_equal(a, epoch_order(3, 6, 100)[0])
    assert not np.array_equal(a, epoch_order(4, 5, 100)[0])


def test_ddp_shards_are_disjoint_equal_and_cover_the_epoch():
    order, _ = epoch_order(0, 1, 103)
    parts = [shard(order, r, 4) for r in range(4)]
    assert {len(p) for p in parts} == {25}  # equal shares: every rank takes the same steps
    seen = np.concatenate(parts)
    assert len(set(seen)) == len(seen) == 100 and set(seen) <= set(order[:100])
    assert [list(epoch_order(0, 1, 103, r, 4)[0]) for r in range(4)] == [list(p) for p in parts]


def test_epoch_batches_cut_the_order_in_steps():
    order = np.arange(10)
    assert [list(b) for b in epoch_batches(order, 4, 2)] == [[0, 1, 2, 3], [4, 5, 6, 7]]
    assert [list(b) for b in epoch_batches(order[:3], 4, 1)] == [[0, 1, 2]]


def test_choose_cache_is_a_pure_function_of_sizes_and_budget():
    kib150 = 150 * 1024
    small = choose_cache(1000, kib150, 2 * GIB, "auto")
    assert small.mode == "ram" and "1000 images" in small.reason and "2.00 GiB" in small.reason
    once = choose_cache(50_000, kib150, 2 * GIB, "auto")
    assert once.mode == "none" and "exceeds" in once.reason and "7.15 GiB" in once.reason
    assert choose_cache(50_000, kib150, 2 * GIB, "auto", passes=5, disk_free_bytes=100 * GIB).mode == "disk"
    assert choose_cache(50_000, kib150, 2 * GIB, "auto", passes=5, disk_free_bytes=1 * GIB).mode == "none"
    for asked in ("ram", "disk", "none"):  # asked for: taken as asked, whatever the sizes
        assert choose_cache(50_000, kib150, 1, asked).mode == asked
    assert ram_budget(None) == 2 * GIB and ram_budget(GIB) == GIB // 2 and ram_budget(100 * GIB) == 2 * GIB
    with pytest.raises(ValueError, match="'fast'"):
        choose_cache(1, 1, 1, "fast")


def test_streamed_pixels_equal_the_in_ram_pixels(shape_folder):
    data = load_data(DataConfig(source=str(shape_folder), cache="ram"))
    ram = data.prepare("train", CONTRACT).pixels
    streamed = load_data(DataConfig(source=str(shape_folder), cache="none", workers=2)).prepare(
        "train", CONTRACT
    )
    assert isinstance(streamed.pixels, StreamedPixels)
    batches = [np.array([3, 0, 5]), np.array([1, 2])]
    streamed.pixels.schedule(batches)  # decoded ahead by 2 worker processes
    assert np.array_equal(streamed.pixels[batches[0]], ram[batches[0]])
    assert np.array_equal(streamed.pixels[batches[1]], ram[batches[1]])
    assert np.array_equal(streamed.pixels[2:9], ram[2:9])  # unannounced: decoded here
    assert np.array_equal(np.asarray(streamed.pixels), ram)


def test_a_slice_read_in_order_is_decoded_ahead_by_the_workers(shape_folder):
    data = load_data(DataConfig(source=str(shape_folder), cache="ram"))
    ram = data.prepare("train", CONTRACT).pixels
    streamed = load_data(DataConfig(source=str(shape_folder), cache="none", workers=1)).prepare(
        "train", CONTRACT
    )
    px = streamed.pixels
    assert np.array_equal(px[0:4], ram[0:4])
    assert px.reading_ahead and len(px._expected) > 0  # the next slices are announced
    got = [px[s : s + 4] for s in range(4, len(px), 4)]
    assert np.array_equal(np.concatenate([ram[0:4], *got]), ram)


def test_workers_of_a_stream_freed_in_a_reference_cycle_get_their_stop_signal(shape_folder, monkeypatch):
    """A StreamedPixels freed by the cyclic GC stops its workers with their stop signal. Before,
    the GC closed the workers' queues first, so the signal never left and each worker was joined
    until torch's timeout (5 s; a quantize run lost 20 s that way). Here that timeout is 10
    minutes: a stop signal that does not arrive hangs the shutdown instead."""
    import gc
    import threading
    import time

    import torch.utils.data._utils as torch_data_utils

    from edgetl.data import loader

    monkeypatch.setattr(torch_data_utils, "MP_STATUS_CHECK_INTERVAL", 600)
    src = image_folder(shape_folder)

    class Holder:
        pass

    holder = Holder()
    holder.me = holder  # a cycle: only the cyclic GC frees it
    holder.px = StreamedPixels(src, np.arange(len(src)), CONTRACT, workers=2)
    holder.px[0:4]  # an unannounced slice: the workers start decoding the rest ahead
    assert holder.px.reading_ahead
    workers = list(loader._LIVE_WORKERS[holder.px._workers_token][1]._workers)
    del holder
    collect = threading.Thread(target=gc.collect, daemon=True)
    collect.start()
    collect.join(timeout=60)
    assert not collect.is_alive(), "the GC waits on the workers' shutdown"
    # the GC hands the shutdown to a thread of its own (a collection may run on a queue's feeder
    # thread, which must stay free to send the stop signal); that thread joins the workers
    for t in [t for t in threading.enumerate() if t.name == "edgetl-loader-stop"]:
        t.join(timeout=60)
        assert not t.is_alive(), "the workers never got their stop signal"
    deadline = time.monotonic() + 60  # a collection another thread had started may still be on it
    while any(w.is_alive() for w in workers) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert [w.is_alive() for w in workers] == [False, False]


def test_disk_cache_is_a_memmap_of_the_same_pixels_left_without_temp_files(
    shape_folder, tmp_path, monkeypatch
):
    monkeypatch.setenv("EDGETL_DECODED_CACHE", str(tmp_path / "decoded"))
    ram = load_data(DataConfig(source=str(shape_folder), cache="ram")).prepare("train", CONTRACT).pixels
    disk = load_data(DataConfig(source=str(shape_folder), cache="disk")).prepare("train", CONTRACT).pixels
    assert isinstance(disk, np.memmap) and np.array_equal(disk, ram)
    files = list((tmp_path / "decoded").iterdir())
    assert len(files) == 1 and files[0].name.startswith("decoded-") and files[0].suffix == ".u8"
    again = load_data(DataConfig(source=str(shape_folder), cache="disk")).prepare("train", CONTRACT).pixels
    assert np.array_equal(again, ram) and list((tmp_path / "decoded").iterdir()) == files  # reused


def test_a_file_replaced_under_the_same_name_is_decoded_again(shape_folder, tmp_path, monkeypatch):
    """The disk cache is keyed by the files' sizes and times too: same ids, new pixels, new key;
    the recorded fingerprint (ids only) stays the same."""
    monkeypatch.setenv("EDGETL_DECODED_CACHE", str(tmp_path / "decoded"))
    data = load_data(DataConfig(source=str(shape_folder), cache="disk"))
    before = np.array(data.prepare("train", CONTRACT).pixels)
    recorded = data.fingerprints()
    row = 0
    victim = data.source.files[int(data.splits["train"][row])]
    Image.new("RGB", (24, 24), (255, 255, 255)).save(victim)  # same name, other pixels
    os.utime(victim, ns=(1, 1))  # a time no earlier write had
    data = load_data(DataConfig(source=str(shape_folder), cache="disk"))
    after = np.array(data.prepare("train", CONTRACT).pixels)
    assert data.fingerprints() == recorded
    assert (after[row] == 255).all() and not np.array_equal(after[row], before[row])
    assert np.array_equal(np.delete(after, row, 0), np.delete(before, row, 0))
    assert len(list((tmp_path / "decoded").iterdir())) == 2


def _corrupt_after_opening(shape_folder, skip_bad: bool):
    data = load_data(DataConfig(source=str(shape_folder), cache="none", workers=1, skip_bad=skip_bad))
    split = data.prepare("train", CONTRACT)
    row = 1
    victim = shape_folder / data.source.ids[int(split.indices[row])]
    victim.write_bytes(victim.read_bytes()[:60])  # truncated after the open-time check
    return data, split, row, victim


def test_corrupt_image_found_by_a_worker_is_a_named_error_not_a_traceback(shape_folder):
    _, split, row, victim = _corrupt_after_opening(shape_folder, skip_bad=False)
    batch = np.array([0, row, 2])
    split.pixels.schedule([batch])
    with pytest.raises(DataError) as exc:
        split.pixels[batch]
    msg = str(exc.value)
    assert victim.name in msg and "--skip-bad" in msg and "worker" not in msg.lower()


def test_skip_bad_counts_a_corrupt_image_found_by_a_worker_and_drops_its_row(shape_folder):
    data, split, row, victim = _corrupt_after_opening(shape_folder, skip_bad=True)
    before = len(data.source.skipped)
    batch = np.array([0, row, 2])
    split.pixels.schedule([batch])
    px, kept = split.pixels.take(batch)
    assert list(kept) == [0, 2] and len(px) == 2
    assert len(data.source.skipped) == before + 1 and victim.name in data.source.skipped[-1]


def test_rrc_flip_is_drawn_from_seed_epoch_and_image():
    img = Image.fromarray(np.random.default_rng(0).integers(0, 255, (60, 80, 3), dtype=np.uint8))
    a = crop_flip_original(img, CONTRACT, 0, 1, 7)
    assert a.shape == (3, 24, 24) and a.dtype == np.uint8
    assert np.array_equal(a, crop_flip_original(img, CONTRACT, 0, 1, 7))
    others = [crop_flip_original(img, CONTRACT, s, e, i) for s, e, i in ((1, 1, 7), (0, 2, 7), (0, 1, 8))]
    assert all(not np.array_equal(a, o) for o in others)


@pytest.mark.parametrize("mode", ["rrc-flip-trivial", "rrc-flip-randaug"])
def test_torchvision_policies_are_drawn_from_seed_epoch_and_image_only(mode):
    img = Image.fromarray(np.random.default_rng(0).integers(0, 255, (60, 80, 3), dtype=np.uint8))
    torch.manual_seed(123)
    before = torch.get_rng_state()
    a = [crop_flip_original(img, CONTRACT, 0, 1, i, mode) for i in range(8)]
    assert torch.equal(torch.get_rng_state(), before)  # torch's own generator left as it was
    torch.manual_seed(999)  # another global state: the same draws
    assert all(np.array_equal(x, crop_flip_original(img, CONTRACT, 0, 1, i, mode)) for i, x in enumerate(a))
    assert a[0].shape == (3, 24, 24) and a[0].dtype == np.uint8
    plain = [crop_flip_original(img, CONTRACT, 0, 1, i) for i in range(8)]
    assert sum(not np.array_equal(x, p) for x, p in zip(a, plain, strict=True)) >= 4  # the policy acts
    assert not np.array_equal(a[0], crop_flip_original(img, CONTRACT, 0, 2, 0, mode))  # a new epoch


@pytest.mark.parametrize("mode", ["rrc-flip-trivial", "rrc-flip-randaug"])
def test_torchvision_policies_give_the_same_pixels_in_any_worker(shape_folder, mode):
    data = load_data(DataConfig(source=str(shape_folder), cache="none"))
    idx = data.splits["train"]
    reads = []
    for workers in (0, 2):
        px = StreamedPixels(data.source, idx, CONTRACT, workers=workers, augment=OriginalAugment(mode, 3))
        batches = [np.array([4, 0, 2]), np.array([1, 3, 5])]
        px.schedule(batches, epoch=2)
        assert px.reading_ahead == (workers > 0)  # decoded ahead by worker processes
        reads.append(np.concatenate([px[b] for b in batches]))
        px.close()
    assert np.array_equal(reads[0], reads[1])


def _tiny(tmp_path, name, **data):
    return FinetuneConfig(
        data=DataConfig(source="digits", limit_train=128, limit_val=30, limit_test=30, **data),
        arch=TINY_ARCH,
        pretrained=False,
        image_size=24,
        epochs=2,
        batch_size=32,
        strategy="full",
        lr=3e-3,
        threads=2,
        output=tmp_path / f"{name}.safetensors",
    )


def test_streamed_training_gives_bit_identical_weights_to_in_ram(tmp_path):
    ram = finetune(_tiny(tmp_path, "ram", cache="ram", augment="crop-flip"), quiet=True)
    streamed = finetune(_tiny(tmp_path, "streamed", cache="none", workers=2, augment="crop-flip"), quiet=True)
    a, b = load_file(str(ram.path)), load_file(str(streamed.path))
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert ram.manifest.metrics["test"] == streamed.manifest.metrics["test"]


@pytest.mark.parametrize("mode", ["rrc-flip", pytest.param("rrc-flip-trivial", marks=pytest.mark.slow)])
def test_rrc_flip_trains_streamed_and_reproducibly(tmp_path, mode):
    one = finetune(_tiny(tmp_path, "a", augment=mode, workers=2).model_copy(update={"epochs": 1}), quiet=True)
    two = finetune(_tiny(tmp_path, "b", augment=mode, workers=1).model_copy(update={"epochs": 1}), quiet=True)
    a, b = load_file(str(one.path)), load_file(str(two.path))
    assert all(torch.equal(a[k], b[k]) for k in a)  # the draws do not depend on the workers


@pytest.mark.parametrize("mode", ORIGINAL_IMAGE_MODES)
def test_rrc_flip_is_refused_for_the_cached_feature_linear_probe(tmp_path, mode):
    cfg = _tiny(tmp_path, "lin", augment=mode).model_copy(update={"strategy": "linear"})
    with pytest.raises(ConfigError, match=f"{mode}: the linear probe"):
        finetune(cfg, quiet=True)


@pytest.mark.parametrize("mode", ORIGINAL_IMAGE_MODES)
def test_rrc_flip_is_refused_for_detection(tmp_path, mode):
    cfg = FinetuneConfig(
        task="detect",
        head="anchor-free",
        data=DataConfig(source=str(tmp_path / "absent"), augment=mode),
        arch=TINY_ARCH,
        output=tmp_path / "det.safetensors",
    )
    with pytest.raises(ConfigError, match="boxes"):
        finetune(cfg, quiet=True)  # refused before the (absent) data is opened


def test_cache_and_workers_leave_results_keys_alone_augment_does_not():
    base = {"data": {"source": "digits", "cache": "auto", "workers": 2, "augment": None}, "epochs": 3}
    other = {"data": {"source": "digits", "cache": "none", "workers": 0, "augment": None}, "epochs": 3}
    assert results_view(base) == results_view(other)
    assert results_view([base]) == [{"data": {"source": "digits", "augment": None}, "epochs": 3}]
    augmented = {**base, "data": {**base["data"], "augment": "rrc-flip"}}
    assert results_view(augmented) != results_view(base)


def test_a_large_folder_opens_on_image_headers_and_the_loader_names_a_bad_body(shape_folder, monkeypatch):
    import edgetl.data.sources as sources

    victim = shape_folder / "square" / "square_03.png"
    victim.write_bytes(victim.read_bytes()[:60])  # the header reads; the pixels do not
    with pytest.raises(DataError, match="square_03.png"):
        image_folder(shape_folder)  # a small folder: every image decoded at opening
    monkeypatch.setattr(sources, "FULL_CHECK_MAX_FILES", 10)  # 36 files: "large"
    src = image_folder(shape_folder)
    assert len(src) == 36 and not src.skipped
    row = src.ids.index("square/square_03.png")
    pixels = StreamedPixels(src, np.arange(len(src)), CONTRACT, workers=1)
    with pytest.raises(DataError, match="square_03.png.*--skip-bad"):
        pixels[row - 1 : row + 2]
    # with --skip-bad an evaluation split cannot drop it: the error says why and what to run
    skipping = StreamedPixels(src, np.arange(len(src)), CONTRACT, workers=1, split="val", skip_bad=True)
    with pytest.raises(DataError, match="square_03.png.*only image headers.*EDGETL_FULL_IMAGE_CHECK=1"):
        skipping[row - 1 : row + 2]
    monkeypatch.setenv("EDGETL_FULL_IMAGE_CHECK", "1")
    assert len(image_folder(shape_folder, skip_bad=True)) == 35


def test_a_hard_link_is_the_same_image_listed_twice(shape_folder):
    import os

    os.link(shape_folder / "circle" / "circle_00.png", shape_folder / "circle" / "circle_99.png")
    with pytest.raises(DataError, match="listed twice"):
        image_folder(shape_folder)
