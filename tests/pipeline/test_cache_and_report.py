"""The stage cache trusts an output only while it holds the bytes the stage wrote; report text
from labels and file names cannot break the markdown."""

from __future__ import annotations

from edgetl.pipeline.blocks import blocks_to_md as _blocks_to_md
from edgetl.pipeline.cache import StageCache


def test_cache_redoes_a_stage_whose_output_was_truncated_or_deleted(tmp_path):
    out = tmp_path / "export" / "m.onnx"
    out.parent.mkdir()
    out.write_bytes(b"model bytes" * 100)
    cache = StageCache(tmp_path, force=set())
    key = cache.key("export", {"opset": 17}, [])
    cache.store("export", key, [out], {"ok": True}, 1.0)
    assert cache.lookup("export", key) == {"ok": True}
    out.write_bytes(b"model bytes")  # truncated behind the cache's back
    assert cache.lookup("export", key) is None
    out.unlink()
    assert cache.lookup("export", key) is None
    assert StageCache(tmp_path, force={"export"}).lookup("export", key) is None


def test_labels_cannot_break_report_markdown(tmp_path):
    md = _blocks_to_md(
        [("table", ["artifact", "why"], [["a|b", "<script>x</script>"]]), ("ul", ["`tick` | pipe"])], tmp_path
    )
    row = md.splitlines()[2]
    assert row.count(" | ") == 1 and "a\\|b" in row and "<script>" not in md and "&lt;script&gt;" in md
    assert "\\`tick\\` \\| pipe" in md


def test_a_skip_reason_naming_an_extra_is_printed_verbatim(capsys, monkeypatch):
    """Reasons such as "pip install 'edgetl[tensorrt]'" reach the log with their brackets (rich
    would otherwise read '[tensorrt]' as a style tag and drop it)."""
    import dataclasses
    from types import SimpleNamespace

    from edgetl import progress
    from edgetl.pipeline.run import _run_stage
    from edgetl.stages.build import STAGE as BUILD

    monkeypatch.setattr(progress, "_QUIET", False)  # the suite runs quiet

    reason = "tensorrt is not installed (pip install 'edgetl[tensorrt]')"
    stage = dataclasses.replace(BUILD, unavailable=lambda: reason)
    context = SimpleNamespace(settings=lambda s: object(), timings={})
    _run_stage(stage, context, cache=None)
    assert f"stage build: skipped ({reason})" in " ".join(capsys.readouterr().err.split())
    assert context.timings["build"]["reason"] == reason
