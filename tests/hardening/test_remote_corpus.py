"""A board is untrusted input. Target URLs and names that are not plain (shell or ssh option
text, paths edgetl would drop, labels that are paths), and a hostile board reached through the
real loopback sshd of tests/remote: its fake edgetl claims this checkout's fingerprint and
returns crafted JSON. Every bad answer is a one-line error naming the target (exit 2, no
traceback, nothing left behind); markup and escape sequences from it are shown, never obeyed;
a replaced blob there is detected by its bytes."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import numpy as np
import pytest

from edgetl.bench.end_to_end import STAGES
from edgetl.errors import ConfigError
from edgetl.remote.targets import parse_url, resolve
from tests.remote.conftest import edgetl, needs_sshd, sshd  # noqa: F401  (sshd: the fixture)

BAD_URLS = {
    "ssh://127.0.0.1;touch x:1": "is not a host name",
    "ssh://$(touch x)": "is not a host name",
    "ssh://`id`": "is not a host name",
    "ssh://-oProxyCommand=x": "is not a host name",
    "ssh://..": "is not a host name",
    "ssh://../": "is not a host name",
    "ssh://.hidden": "is not a host name",
    "ssh://a b": "is not a host name",
    "ssh://%2e%2e": "is not a host name",
    "ssh://u;id@host": "is not a user name",
    "ssh://$(id)@host": "is not a user name",
    "ssh://-lroot@host": "is not a user name",
    "ssh://a%20b@host": "is not a user name",
    "ssh://u:secret@host": "keys only",
    "ssh://host/some/path": "the path '/some/path' would be ignored",
    "ssh://host#frag": "not part of a target URL",
    "ssh://[x": "not a URL",
    "ssh://host]": "not a URL",
    "ssh://host:0x16": "the port must be a number",
    "ssh://host?dir=/a%0Ab": "dir='/a\\nb' holds a control character",
    "ssh://host?dir=/a%1B[31m": "holds a control character",
    "ssh://host?python=-c": "starts with '-'",
}


def _one_line_error(r, *needles) -> None:
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    assert "Traceback" not in r.stdout + r.stderr, r.stderr
    text = " ".join(r.stderr.split())
    for n in needles:
        assert n in text, (n, r.stderr)


@pytest.mark.parametrize("url", BAD_URLS, ids=range(len(BAD_URLS)))
def test_a_target_url_that_is_not_plain_is_refused_naming_it(url):
    with pytest.raises(ConfigError) as err:
        parse_url(url)
    message = str(err.value)
    assert message.startswith(f"--on {url!r}: ") and BAD_URLS[url] in message, message


@pytest.mark.parametrize(
    "url", ["ssh://orin", "ssh://nvidia@orin.local:2222", "ssh://pi_4@10.0.0.7", "ssh://[::1]:22", "ssh://h/"]
)
def test_plain_target_urls_still_parse(url):
    assert parse_url(url).host


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.delenv("EDGETL_TARGETS", raising=False)
    return tmp_path


def _env(tmp_path: Path, **extra) -> dict:
    tmp = tmp_path / "tmpdir"
    tmp.mkdir(exist_ok=True)
    env = {**os.environ, "XDG_CONFIG_HOME": str(tmp_path / "config"), "TMPDIR": str(tmp), "EDGETL_DEBUG": ""}
    env.pop("EDGETL_TARGETS", None)
    return {**env, "EDGETL_QUIET": "1", "COLUMNS": "200", **extra}


@pytest.mark.slow
@pytest.mark.parametrize(
    "name, url, needle",
    [
        ("m", "ssh://127.0.0.1;touch x:1", "is not a host name"),
        ("m", "ssh://host/some/path", "would be ignored"),
        ("m", "ssh://[x", "not a URL"),
        ("..", "ssh://host", "target name '..'"),
        (".", "ssh://host", "target name '.'"),
        ("a/b", "ssh://host", "target name 'a/b'"),
    ],
)
def test_targets_add_refuses_and_saves_nothing(name, url, needle, tmp_path):
    r = edgetl("targets", "add", name, url, env=_env(tmp_path), cwd=tmp_path)
    _one_line_error(r, needle)
    assert not (tmp_path / "config").exists() and not (tmp_path / "x").exists()


def _hand_edited_targets(tmp_path: Path, targets: dict[str, str]) -> Path:
    path = tmp_path / "config" / "edgetl" / "targets.yaml"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(targets))  # JSON is YAML: any string, escapes included
    return path


@pytest.mark.slow
def test_a_label_that_is_a_path_writes_nothing_anywhere(tmp_path):
    _hand_edited_targets(tmp_path, {"..": "ssh://127.0.0.1:1", "ok": "ssh://127.0.0.1:1?dir=/a%0Ab"})
    model = tmp_path / "m.onnx"
    model.write_bytes(b"not really a model")
    env = _env(tmp_path)
    for on, needle in (("@..", "target name '..'"), ("ssh://../", "is not a host name"), ("@ok", "dir=")):
        r = edgetl("bench", model, "--on", on, "-o", tmp_path / "out", env=env, cwd=tmp_path)
        _one_line_error(r, needle)
    assert list((tmp_path / "tmpdir").iterdir()) == [] and not (tmp_path / "out").exists()


def test_targets_list_shows_escapes_instead_of_obeying_them(tmp_path, home):
    from typer.testing import CliRunner

    from edgetl.cli import app

    _hand_edited_targets(tmp_path, {"x\x1b]0;pwned\x07": "ssh://h\x1b[5m\nforged\tline"})
    out = CliRunner().invoke(app, ["targets", "list"]).output
    assert "\x1b" not in out and "\x07" not in out and out.count("\n") == 1, repr(out)
    assert "x\\x1b]0;pwned\\x07\tssh://h\\x1b[5m\\x0aforged\\x09line" in out


def test_a_saved_name_that_is_a_path_is_refused_on_use(tmp_path, home):
    _hand_edited_targets(tmp_path, {"..": "ssh://host"})
    with pytest.raises(ConfigError, match=r"targets.yaml: target name '\.\.'"):
        resolve("@..")


# --- a hostile board, through the real sshd -------------------------------------------------

FAKE_EDGETL = """#!/bin/sh
# a board's "edgetl": whatever the test put in payload.json, as the result of any command
D="$(dirname "$0")/../.."
case "$1" in
  bench) mkdir -p out && cp "$D/payload.json" out/bench.json ;;
  eval) mkdir -p out && cp "$D/payload.json" out/eval.json ;;
  *) cat "$D/payload.json" ;;
esac
"""


def _lying_board(root: Path) -> Path:
    """An edgetl folder whose venv claims this checkout's fingerprint without holding it."""
    from edgetl.remote.fingerprint import fingerprint

    bin_dir = root / "venv" / "bin"
    bin_dir.mkdir(parents=True)
    (bin_dir / "python").write_text(f"#!/bin/sh\necho {fingerprint()}\n")
    (bin_dir / "edgetl").write_text(FAKE_EDGETL)
    for f in ("python", "edgetl"):
        (bin_dir / f).chmod((bin_dir / f).stat().st_mode | stat.S_IEXEC)
    return root


def _row(artifact: str = "in/0/base.onnx", **over) -> dict:
    compute = {"runs": 5, "p50_ms": 1.0, "p90_ms": 1.1, "p99_ms": 1.2, "mean_ms": 1.0, "std_ms": 0.1}
    compute |= {"p50_ci95_ms": [0.9, 1.1], "throughput_img_s": 1000.0}
    row = {"artifact": artifact, "kind": "onnx", "backend": "onnxruntime", "batch": 1, "threads": None}
    return {**row, "compute": compute, "stability": {"by": "segment", "spread": 0.01}, **over}


def _report(**over) -> dict:
    base = {
        "results": [_row()],
        "skipped": [],
        "artifacts": {"in/0/base.onnx": {"sha256": "x", "bytes": 18, "kind": "onnx"}},
        "warnings": [],
        "environment": {"cpu": "board"},
        "contention": {},
        "power": {"available": False, "reason": "off"},
        "soak": None,
    }
    return {**base, **over}


HOSTILE = {
    "a-list": ([], "at the top level"),
    "not-json": ("<html>hello</html>", "returned no JSON"),
    "no-artifact": (
        _report(results=[{k: v for k, v in _row().items() if k != "artifact"}]),
        "results.0.artifact",
    ),
    "batch-a-string": (_report(results=[_row(batch="one")]), "results.0.batch"),
    "p50-a-string": (_report(results=[_row(compute={"p50_ms": "fast"})]), "results.0.compute"),
    "ci-one-number": (
        _report(results=[_row(compute={**_row()["compute"], "p50_ci95_ms": 1})]),
        "p50_ci95_ms",
    ),
    "e2e-three-stages": (
        _report(
            results=[
                _row(end_to_end={**_row()["compute"], "stages": {s: {"p50_ms": 1.0} for s in STAGES[:3]}})
            ]
        ),
        "stages needs decode, preprocess, infer and postprocess together",
    ),
    "power-half": (_report(results=[_row(power={"avg_w": 1.0})]), "avg_w, peak_w and energy_per_image_mj"),
    "skipped-no-reason": (
        _report(skipped=[{"artifact": "in/0/base.onnx", "backend": "x"}]),
        "skipped.0.reason",
    ),
    "warnings-a-dict": (_report(warnings={"a": 1}), "warnings"),
    "another-artifact": (_report(results=[_row(artifact="/etc/passwd")]), "which it was not sent"),
    "too-deep": (_report(environment=json.loads("[" * 200 + "]" * 200)), "nested deeper"),
}


def _bench(sshd, board: Path, model: Path, tmp_path: Path, out: str = "out"):  # noqa: F811
    url = sshd.url(dir=board)
    return edgetl("bench", str(model), "--on", url, "-o", out, env=sshd.env(TMPDIR=str(_tmp(tmp_path))),
                  cwd=tmp_path, timeout=120)  # fmt: skip


def _tmp(tmp_path: Path) -> Path:
    tmp = tmp_path / "tmpdir"
    tmp.mkdir(exist_ok=True)
    return tmp


@pytest.fixture
def board(tmp_path) -> Path:
    return _lying_board(tmp_path / "board")


@pytest.fixture
def model(tmp_path, tiny_onnx) -> Path:
    import shutil

    return Path(shutil.copy(tiny_onnx, tmp_path / "base.onnx"))


def _no_leftovers(tmp_path: Path, board: Path) -> None:
    assert not (tmp_path / "out" / "bench.json").exists()
    assert list((board / "runs").iterdir()) == []  # the run folder there was removed
    assert list(_tmp(tmp_path).iterdir()) == []  # the per-target config folder here too


@pytest.mark.slow
@needs_sshd
@pytest.mark.parametrize("payload, needle", HOSTILE.values(), ids=HOSTILE.keys())
def test_a_hostile_boards_answer_is_refused_naming_the_target(sshd, board, model, tmp_path, payload, needle):  # noqa: F811
    (board / "payload.json").write_text(payload if isinstance(payload, str) else json.dumps(payload))
    r = _bench(sshd, board, model, tmp_path)
    label = f"127.0.0.1:{sshd.ports[0]}"
    _one_line_error(r, f"{label}: benchmarking returned", needle)
    _no_leftovers(tmp_path, board)


CRAFTED = (
    "[blink]evil[/] \x1b[5mblink\x1b]0;window title\x07\x9b31m [link=https://x.example]click[/]\nforged line"
)


@pytest.mark.slow
@needs_sshd
def test_markup_and_escape_sequences_from_a_board_are_shown_not_obeyed(sshd, board, model, tmp_path):  # noqa: F811
    report = _report(
        results=[_row(backend=CRAFTED)],
        skipped=[{"artifact": "in/0/base.onnx", "backend": "openvino", "reason": CRAFTED}],
        warnings=[CRAFTED],
    )
    (board / "payload.json").write_text(json.dumps(report))
    r = _bench(sshd, board, model, tmp_path)
    assert r.returncode == 0, r.stderr
    shown = r.stdout + r.stderr
    for raw in ("\x1b[5m", "\x1b]", "\x07", "\x9b", "\x1b]8;"):  # blink, OSC title, BEL, CSI, hyperlink
        assert raw not in shown, (raw, shown)
    assert "\nforged line" not in shown and "\\x0aforged line" in shown
    assert "[blink]evil[/]" in shown and "\\x1b]0;window title\\x07" in shown
    saved = json.loads((tmp_path / "out" / "bench.json").read_text())
    assert saved["results"][0]["artifact"] == str(model) and "\x1b" not in json.dumps(
        saved, ensure_ascii=False
    )


@pytest.mark.slow
@needs_sshd
def test_a_replaced_blob_on_the_board_is_detected_and_sent_again(sshd, board, model, tmp_path):  # noqa: F811
    import hashlib

    (board / "payload.json").write_text(json.dumps(_report()))
    first = _bench(sshd, board, model, tmp_path, out="first")
    assert first.returncode == 0, first.stderr
    blob = board / "blobs" / hashlib.sha256(model.read_bytes()).hexdigest()
    assert blob.read_bytes() == model.read_bytes()
    blob.write_bytes(b"another model")  # someone on the board swaps it, keeping its name
    second = _bench(sshd, board, model, tmp_path, out="second")
    assert second.returncode == 0, second.stderr
    sent = json.loads((tmp_path / "second" / "bench.json").read_text())["targets"][
        f"127.0.0.1:{sshd.ports[0]}"
    ]
    assert sent["files_sent"] == 1 and sent["bytes_sent"] == model.stat().st_size  # base.onnx again, only it
    assert blob.read_bytes() == model.read_bytes()


@pytest.mark.slow
@needs_sshd
def test_a_blob_replaced_between_copy_and_use_stops_the_run(sshd, board, tmp_path, monkeypatch):  # noqa: F811
    import hashlib

    from edgetl.remote import ssh
    from edgetl.remote.sync import verify_blob

    monkeypatch.setenv("EDGETL_SSH_CONFIG", str(sshd.ssh_config))
    target = parse_url(sshd.url(dir=board))
    blob = board / "blobs" / hashlib.sha256(b"base").hexdigest()
    blob.parent.mkdir()
    blob.write_bytes(b"base")
    assert ssh.run(target, verify_blob(str(blob), "base.onnx") + " && echo used") == "used\n"
    blob.write_bytes(b"swapped")
    with pytest.raises(
        ssh.RemoteError, match=r"the copy of base.onnx on the target .* no longer holds its bytes"
    ):
        ssh.run(target, verify_blob(str(blob), "base.onnx") + " && echo used")


@pytest.mark.slow
@needs_sshd
@pytest.mark.parametrize(
    "payload, needle",
    [
        ([], "0 result(s) for 1 image(s)"),
        ([{"image": "x", "top": [{"label": "a", "probability": 7}]}], "top.0.probability"),
        ({"image": "x"}, "at the top level"),
    ],
)
def test_a_hostile_boards_predictions_are_refused(sshd, board, model, tmp_path, payload, needle):  # noqa: F811
    from PIL import Image

    image = tmp_path / "a.png"
    Image.new("RGB", (8, 8)).save(image)
    (board / "payload.json").write_text(json.dumps(payload))
    r = edgetl("predict", str(model), str(image), "--on", sshd.url(dir=board), env=sshd.env(), cwd=tmp_path,
               timeout=120)  # fmt: skip
    _one_line_error(r, f"127.0.0.1:{sshd.ports[0]}: predicting with base.onnx returned", needle)


@pytest.mark.slow
@needs_sshd
def test_a_hostile_boards_labels_are_printed_escaped(sshd, board, model, tmp_path):  # noqa: F811
    from PIL import Image

    image = tmp_path / "a.png"
    Image.new("RGB", (8, 8)).save(image)
    (board / "payload.json").write_text(
        json.dumps([{"image": "x", "top": [{"label": CRAFTED, "probability": 0.5}]}])
    )
    r = edgetl("predict", str(model), str(image), "--on", sshd.url(dir=board), env=sshd.env(), cwd=tmp_path,
               timeout=120)  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "\x1b" not in r.stdout and "\x07" not in r.stdout and "[blink]evil[/]" in r.stdout
    assert str(image) in r.stdout  # the local image name, not the board's


@pytest.mark.slow
@needs_sshd
def test_a_hostile_boards_eval_is_refused(sshd, board, model, tmp_path):  # noqa: F811
    bad = {"artifact": "x", "num_samples": 4, "top1": 0.5, "top5": 1.0, "per_class": {"a": 0.5, "b": 0.5},
           "confusion": [[1, 1]], "backend": "onnxruntime", "split": "test"}  # fmt: skip
    (board / "payload.json").write_text(json.dumps(bad))
    r = edgetl("eval", str(model), "--data", "digits", "--on", sshd.url(dir=board), "-o", "ev",
               env=sshd.env(), cwd=tmp_path, timeout=120)  # fmt: skip
    _one_line_error(r, f"127.0.0.1:{sshd.ports[0]}: evaluating base.onnx", "confusion is not 2 x 2")
    assert not (tmp_path / "ev").exists() or not list((tmp_path / "ev").rglob("*.json"))


@pytest.mark.parametrize("name", [k for k in HOSTILE if k != "another-artifact"])  # that one: the check
def test_the_reader_refuses_each_hostile_bench_naming_the_target(name):
    from edgetl.remote.results import BENCH, BoardResultError, read_result

    payload, needle = HOSTILE[name]
    text = payload if isinstance(payload, str) else json.dumps(payload)
    with pytest.raises(BoardResultError) as err:
        read_result("board", "benchmarking", text, BENCH)
    assert str(err.value).startswith("board: benchmarking returned") and needle in str(err.value)


def test_the_reader_alone(tmp_path):
    from edgetl.remote.results import BENCH, BoardResultError, read_result

    good = read_result("b", "benchmarking", json.dumps(_report()), BENCH)
    assert good["results"][0]["compute"]["p50_ms"] == 1.0 and "end_to_end" not in good["results"][0]
    with pytest.raises(BoardResultError, match=r"^b: benchmarking returned .* MB"):
        read_result("b", "benchmarking", " " * (65 << 20), BENCH)
    deep = "[" * 100000 + "]" * 100000
    with pytest.raises(BoardResultError, match=r"^b: benchmarking returned no JSON"):
        read_result("b", "benchmarking", deep, BENCH)


# --- a detector's answers -------------------------------------------------------------------

_BOX = {"label": "Trouser", "class": 1, "score": 0.5, "box": [1.0, 2.0, 30.0, 40.0]}

BAD_DETECTIONS = {
    "box-3-numbers": ({"box": [1, 2, 3]}, "detections.0.box"),
    "box-infinite": ({"box": [1, 2, 3, float("inf")]}, "finite number"),
    "box-nan": ({"box": [float("nan"), 2, 3, 4]}, "finite number"),
    "box-a-string": ({"box": "1,2,3,4"}, "detections.0.box"),
    "class-out-of-range": ({"class": 10, "label": "Trouser"}, "class 10 is out of range"),
    "class-negative": ({"class": -1}, "detections.0.class"),
    "class-a-float": ({"class": 1.5}, "detections.0.class"),
    "class-a-bool": ({"class": True}, "detections.0.class"),
    "class-missing": ({"class": None}, "detections.0.class"),
    "score-above-1": ({"score": 1.5}, "detections.0.score"),
    "score-nan": ({"score": float("nan")}, "detections.0.score"),
    "label-of-another-class": ({"label": "Dress"}, "is not class 1's ('Trouser')"),
}


def _answer(rows) -> str:
    return json.dumps(rows)  # NaN and Infinity as Python's json writes them (and reads them back)


@pytest.mark.parametrize("change, needle", BAD_DETECTIONS.values(), ids=BAD_DETECTIONS.keys())
def test_a_bad_detection_is_refused(tiny_detector_onnx, tmp_path, change, needle):
    from edgetl.remote.predict import remote_call
    from edgetl.remote.results import BoardResultError, read_result

    call = remote_call(tiny_detector_onnx, [tmp_path / "a.png"], 5, None)
    box = {k: v for k, v in {**_BOX, **change}.items() if v is not None}
    with pytest.raises(BoardResultError, match=r"^b: predicting returned a result edgetl cannot use") as err:
        read_result(
            "b", "predicting", _answer([{"image": "a", "detections": [box]}]), call.schema, call.check
        )
    assert needle in str(err.value), str(err.value)


def test_a_detectors_answer_must_be_detections_and_no_more_than_asked(tiny_detector_onnx, tmp_path):
    from edgetl.remote.predict import remote_call
    from edgetl.remote.results import BoardResultError, read_result

    call = remote_call(tiny_detector_onnx, [tmp_path / "a.png"], 2, None)
    good = read_result(
        "b", "predicting", _answer([{"image": "a", "detections": [_BOX]}]), call.schema, call.check
    )
    assert good == [{"image": "a", "detections": [_BOX]}]
    for rows, needle in (
        ([{"image": "a", "top": [{"label": "Trouser", "probability": 0.5}]}], "renders 'detections'"),
        ([{"image": "a", "detections": [_BOX], "top": []}], "either top"),
        ([{"image": "a", "detections": [_BOX] * 3}], "more than the 2 results asked for"),
        ([{"image": "a", "detections": []}] * 2, "2 result(s) for 1 image(s)"),
    ):
        with pytest.raises(BoardResultError, match="predicting returned") as err:
            read_result("b", "predicting", _answer(rows), call.schema, call.check)
        assert needle in str(err.value), (needle, str(err.value))


def test_a_detectors_eval_is_checked(tiny_detector_onnx, tmp_path):
    from edgetl.remote.eval import remote_call
    from edgetl.remote.results import BoardResultError, read_result
    from edgetl.stages.eval import EvalConfig

    call = remote_call(EvalConfig(artifact=tiny_detector_onnx, data={"source": "x"}), tmp_path)
    ok = {"task": "detect", "artifact": "x", "num_images": 3, "num_objects": 4, "map50_95": 0.25,
          "map50": 0.5, "map75": float("nan"), "ar100": 0.3, "per_class": {"a": None, "b": 0.2},
          "per_class_ap50": {"a": None, "b": 0.3}, "backend": "onnxruntime", "split": "test",
          "curves": {"pr_iou50": {"a": None, "b": {"recall": [0, 1], "precision": [1, 0.5],
                                                    "ap50": 0.7}}}}  # fmt: skip
    got = read_result("b", "evaluating", _answer(ok), call.schema, call.check)
    assert got["map50"] == 0.5 and np.isnan(got["map75"]) and got["curves"]["pr_iou50"]["b"]["ap50"] == 0.7
    classify = {"artifact": "x", "num_samples": 4, "top1": 0.5, "top5": 1.0, "per_class": {"a": 0.5},
                "confusion": [[4]], "backend": "onnxruntime", "split": "test"}  # fmt: skip
    for bad, needle in (
        ({**ok, "map50": 2}, "2.0 is not a fraction"),
        ({**ok, "per_class": {"a": -0.1}}, "is not a fraction"),
        ({**ok, "num_images": 0}, "num_images"),
        (
            {**ok, "curves": {"pr_iou50": {"b": {"recall": [0], "precision": [1, 0.5], "ap50": 0.7}}}},
            "differ",
        ),
        ({k: v for k, v in ok.items() if k != "map50_95"}, "map50_95"),
        ({**ok, "task": "segment"}, "does not match any of the expected tags"),
        (classify, "it is a classify evaluation, and det.onnx is a detect model"),
    ):
        with pytest.raises(BoardResultError, match="evaluating det.onnx") as err:
            read_result("b", "evaluating det.onnx", _answer(bad), call.schema, call.check)
        assert needle in str(err.value), (needle, str(err.value))


@pytest.mark.slow
@needs_sshd
def test_a_hostile_boards_detections_are_refused_through_ssh(sshd, board, tiny_detector_onnx, tmp_path):  # noqa: F811
    from PIL import Image

    image = tmp_path / "a.png"
    Image.new("RGB", (8, 8)).save(image)
    bad = [{"image": "x", "detections": [{**_BOX, "box": [0, 0, 1, float("inf")]}]}]
    (board / "payload.json").write_text(_answer(bad))
    r = edgetl("predict", str(tiny_detector_onnx), str(image), "--on", sshd.url(dir=board), env=sshd.env(),
               cwd=tmp_path, timeout=120)  # fmt: skip
    _one_line_error(r, f"127.0.0.1:{sshd.ports[0]}: predicting with det.onnx returned", "finite number")
