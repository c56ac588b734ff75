import json
from pathlib import Path

import numpy as np
import pytest

from edgetl.data.dataset import DataConfig
from edgetl.errors import DataError, EdgetlError
from edgetl.evaluate import evaluate, write_eval_outputs
from edgetl.predict import predict
from edgetl.runners.registry import make_runner
from edgetl.tasks.classify.metrics import classification_metrics


def test_metrics_by_hand():
    logits = np.array([[3, 1, 0], [0, 3, 1], [0, 1, 3], [3, 0, 1.0]])
    m = classification_metrics(logits, np.array([0, 1, 1, 2]), ["a", "b", "c"])
    assert m["top1"] == 0.5
    assert m["per_class"] == {"a": 1.0, "b": 0.5, "c": 0.0}
    assert m["confusion"] == [[1, 0, 0], [0, 1, 1], [1, 0, 0]]
    assert m["top5"] == 1.0


def test_eval_matches_training_metrics_and_writes_outputs(tiny_checkpoint, tmp_path):
    from edgetl.manifest import read_manifest

    m = evaluate(tiny_checkpoint, DataConfig(source="digits"), split="test")
    trained = read_manifest(tiny_checkpoint).metrics["test"]
    assert m.num_samples == trained["num_samples"]
    assert abs(m.top1 - trained["top1"]) < 1e-9  # same split, same contract, same numbers
    paths = write_eval_outputs(m, tmp_path / "ev")
    assert json.loads(paths["json"].read_text())["top1"] == m.top1
    assert paths["png"].read_bytes()[:4] == b"\x89PNG"


def test_eval_rejects_data_with_other_labels(tiny_checkpoint, shape_folder):
    with pytest.raises(DataError, match="do not match the model's labels"):
        evaluate(tiny_checkpoint, DataConfig(source=str(shape_folder)), split="all")


def test_predict_top_k_from_manifest_preprocessing(tiny_checkpoint, tmp_path):
    from PIL import Image
    from sklearn.datasets import load_digits

    d = load_digits()
    path = tmp_path / "digit.png"
    Image.fromarray((d.images[0] * 15).astype(np.uint8), "L").save(path)
    (res,) = predict(tiny_checkpoint, [path], top_k=3)
    probs = [t["probability"] for t in res["top"]]
    assert len(probs) == 3 and probs == sorted(probs, reverse=True) and sum(probs) <= 1.0 + 1e-6
    with pytest.raises(DataError, match="nope.png"):
        predict(tiny_checkpoint, [tmp_path / "nope.png"])


def test_runner_checks_lifecycle_and_input(tiny_checkpoint):
    runner = make_runner(tiny_checkpoint)
    with pytest.raises(EdgetlError, match="activate"):
        runner.infer(np.zeros((1, 3, 32, 32), np.float32))
    with runner:
        assert runner.infer(np.zeros((2, 3, 32, 32), np.float32))["logits"].shape == (2, 10)
        with pytest.raises(EdgetlError, match="does not match the manifest"):
            runner.infer(np.zeros((1, 3, 64, 64), np.float32))
        with pytest.raises(EdgetlError, match="float32"):
            runner.infer(np.zeros((1, 3, 32, 32), np.float64))
    with pytest.raises(EdgetlError, match="unknown backend"):
        make_runner(tiny_checkpoint, "tflite")


def test_eval_takes_the_split_settings_the_model_was_trained_with(tmp_path):
    """A model trained with another test fraction is evaluated on its own test split (not one
    that holds training images) when eval names the same data without the fraction."""
    from edgetl.train.config import FinetuneConfig
    from edgetl.train.finetune import finetune
    from tests.conftest import TINY_ARCH

    out = tmp_path / "m.safetensors"
    cfg = FinetuneConfig(
        data=DataConfig(source="digits", test_fraction=0.3, limit_train=64, limit_val=32),
        arch=TINY_ARCH, pretrained=False, image_size=16, epochs=1, threads=2, output=out,
    )  # fmt: skip
    trained = finetune(cfg, quiet=True).manifest
    m = evaluate(out, DataConfig(source="digits"), split="test")
    assert m.num_samples == trained.metrics["test"]["num_samples"]
    assert m.split_fingerprint == trained.provenance.data["fingerprints"]["test"]
    other = evaluate(
        out, DataConfig(source="digits", test_fraction=0.1), split="test"
    )  # said explicitly: kept
    assert other.num_samples < m.num_samples


def test_paired_eval_measures_every_artifact_on_the_same_images(tiny_checkpoint, tiny_onnx, tmp_path):
    """``edgetl eval A B``: one data set (A's split), per-image predictions for each, and B's
    paired drop against A with the exact interval quantize uses; the source defaults to A's."""
    from edgetl.stages.eval import EvalConfig, run

    result = run(EvalConfig(artifact=tiny_checkpoint, compare=(tiny_onnx,), out=tmp_path / "ev"))
    a, b = result.metrics.by_role[str(tiny_checkpoint)], result.metrics.by_role[str(tiny_onnx)]
    alone = evaluate(tiny_checkpoint, DataConfig(source="digits"), split="test")
    assert a.top1 == alone.top1 and a.paired is None  # no --data: the checkpoint's own digits
    assert b.paired.against == str(tiny_checkpoint) and b.paired.images == alone.num_samples
    assert b.paired.drop_pt == round(100 * (a.top1 - b.top1), 9) == 0.0  # the ONNX is its parity twin
    lo, hi = b.paired.ci95_pt
    assert lo <= 0.0 <= hi < 3.0
    for n, path in enumerate((tiny_checkpoint, tiny_onnx)):
        folder = tmp_path / "ev" / f"{n}-{path.stem}"
        rows = [json.loads(line) for line in (folder / "predictions.jsonl").read_text().splitlines()]
        assert len(rows) == alone.num_samples and all(r["top"] for r in rows)
        assert json.loads((folder / "eval.json").read_text())["top1"] == alone.top1
    first = [json.loads(line) for line in (tmp_path / "ev" / "0-tiny" / "predictions.jsonl").open()]
    assert len({r["id"] for r in first}) == len(first)  # one line per test image


EVAL_FIXTURES = sorted((Path(__file__).parent / "fixtures" / "eval").glob("main-*.json"))


def test_there_are_eval_fixtures_to_load():
    assert {p.name for p in EVAL_FIXTURES} >= {
        "main-c58b30e-classify.json",
        "main-c58b30e-classify-paired.json",
        "main-c58b30e-detect-paired.json",
    }


@pytest.mark.parametrize("path", EVAL_FIXTURES, ids=lambda p: p.stem)
def test_an_eval_json_from_main_loads_and_reads_back_key_for_key(path):
    """eval.json files written by main at c58b30e (tests/fixtures/eval) load as EvalResult, dump
    back to the same JSON, and give the entry the report and `edgetl eval` print from."""
    from edgetl.stages.eval import _entry
    from edgetl.stages.metrics import EvalResult

    written = json.loads(path.read_text())
    result = EvalResult.model_validate(written)
    assert result.to_json() == written
    entry = _entry(result, result.artifact, {})
    key = written.get("paired", {}).get("metric", "top1")
    assert entry.value(key) == written[key] and entry.backend == written["backend"]
    if "paired" in written:
        p = written["paired"]
        assert entry.paired.against == p["against"] and entry.paired.ci95_pt == tuple(p["ci95_pt"])
        assert entry.paired.drop_pt == p["drop_pt"] and entry.paired.images == p["images"]
    else:
        assert entry.paired is None


def test_eval_on_local_reads_back_as_a_typed_entry(tiny_checkpoint, tmp_path):
    """``eval --on local``: the local run's result goes through the same eval.json dict a board
    sends back, and comes out as the typed entry and eval.json of a local eval."""
    from edgetl.stages.eval import EvalConfig, run

    result = run(EvalConfig(artifact=tiny_checkpoint, on=("local",), out=tmp_path / "ev"))
    ((key, entry),) = result.metrics.by_role.items()
    alone = evaluate(tiny_checkpoint, DataConfig(source="digits"), split="test")
    assert key == f"{tiny_checkpoint}@local" and entry.top1 == alone.top1 and entry.paired is None
    written = json.loads((tmp_path / "ev" / "local" / "eval.json").read_text())
    assert written["top1"] == alone.top1 and written["artifact"] == str(tiny_checkpoint)
