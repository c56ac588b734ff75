"""The docs say what the code does: code blocks that show a file are that file, and every option
a doc's command line (or prose) names is one that command's --help lists."""

from __future__ import annotations

import re

import pytest
import typer
from typer.testing import CliRunner

from tests.docs.examples import DOCS, ROOT, all_commands, blocks


def _python_blocks(doc: str) -> list[str]:
    return [b.text for b in blocks(doc) if b.lang == "python"]


def test_the_backend_example_is_the_shipped_module():
    source = (ROOT / "edgetl/runners/ort_openvino_runner.py").read_text()
    assert source.rstrip("\n") in [b.rstrip("\n") for b in _python_blocks("docs/extending.md")]


def test_the_task_declaration_shown_is_the_one_in_the_package():
    shown = next(b for b in _python_blocks("docs/extending.md") if b.startswith("TASK = TaskSpec("))
    assert shown in (ROOT / "edgetl/tasks/classify/__init__.py").read_text()


def test_the_ort_openvino_backend_is_listed_with_the_probes_reason():
    import onnxruntime as ort

    from edgetl.cli.app import app
    from edgetl.runners.registry import available_backends, backends_for

    assert "onnxruntime-openvino" in backends_for("onnx-int8")
    reason = available_backends()["onnxruntime-openvino"]
    out = CliRunner().invoke(app, ["backends"]).output
    line = next(x for x in out.splitlines() if x.startswith("onnxruntime-openvino"))
    if "OpenVINOExecutionProvider" in ort.get_available_providers():
        assert reason is None and "available" in line
    else:
        assert "no OpenVINOExecutionProvider" in reason and "pip install onnxruntime-openvino" in reason
        assert "unavailable" in line and "OpenVINOExecutionProvider" in line


def test_benching_on_the_missing_ep_is_a_clear_error(tiny_onnx):
    import onnxruntime as ort

    from edgetl.errors import BackendUnavailable
    from edgetl.runners.registry import make_runner

    if "OpenVINOExecutionProvider" in ort.get_available_providers():
        with make_runner(tiny_onnx, "onnxruntime-openvino", threads=1) as r:
            assert r.infer  # runs for real where onnxruntime-openvino is installed
        return
    with pytest.raises(BackendUnavailable, match="onnxruntime-openvino.*OpenVINOExecutionProvider"):
        make_runner(tiny_onnx, "onnxruntime-openvino", threads=1)


# --help against the docs ---------------------------------------------------------------------
def _is_group(cmd) -> bool:
    return hasattr(cmd, "commands")  # typer may vendor its own click: no isinstance


def _cli():
    from edgetl.cli.app import app

    return typer.main.get_command(app)


def _leaves(group, prefix: tuple[str, ...] = ()):
    for name, cmd in group.commands.items():
        if _is_group(cmd):
            yield from _leaves(cmd, (*prefix, name))
        else:
            yield (*prefix, name), cmd


def _options(cmd) -> set[str]:
    return {o for p in cmd.params for o in (*p.opts, *p.secondary_opts) if o.startswith("-")}


def test_every_help_renders_and_every_command_has_quiet():
    from edgetl.cli.app import app

    runner = CliRunner()
    top = runner.invoke(app, ["--help"])
    assert top.exit_code == 0 and "--debug" in top.output
    for path, cmd in _leaves(_cli()):
        r = runner.invoke(app, [*path, "--help"])
        assert r.exit_code == 0, (path, r.output)
        assert {"--quiet", "-q"} <= _options(cmd), f"edgetl {' '.join(path)} has no --quiet"


def test_stage_commands_take_config_set_print_config_and_a_valid_set_example():
    from pydantic import TypeAdapter

    from edgetl.cli.bind import _field, parse_sets, set_example
    from edgetl.stages.registry import STAGES

    group = _cli()
    for stage in (s for s in STAGES if s.command):
        opts = _options(group.commands[stage.name])
        assert {"--config", "-c", "--set", "--print-config"} <= opts, stage.name
        example = set_example(stage)
        assert example, stage.name
        help_text = next(p.help for p in group.commands[stage.name].params if "--set" in p.opts)
        for kv in example:
            assert f"--set {kv}" in help_text
            key, value = kv.split("=", 1)
            value = parse_sets([kv])
            for part in key.split("."):
                value = value[part]
            TypeAdapter(_field(stage.config, key).annotation).validate_python(value)  # a valid value


@pytest.mark.parametrize(
    ("command", "flags"),
    [
        ("finetune", ["--augment", "--limit-train", "--limit-val", "--limit-test", "--skip-bad", "--cache"]),
        ("distill", ["--augment", "--limit-train", "--limit-val", "--limit-test", "--skip-bad", "--cache"]),
    ],
)
def test_training_commands_take_the_same_data_options(command, flags):
    assert set(flags) <= _options(_cli().commands[command])


# flags of other programs the docs show (torchrun, ssh, pip, venv, cmake, the C++ example)
FOREIGN = {"--nproc_per_node", "--system-site-packages", "--top-k", "--json", "--bench", "--interval"}


def _doc_commands() -> list[tuple[str, list[str]]]:
    """(where, argv) of every `edgetl ...` command line and inline `edgetl ...` code span."""
    import shlex

    out = []
    for c in all_commands():
        lexer = shlex.shlex(c.text.splitlines()[0], posix=True, punctuation_chars=True)
        words: list[str] = []
        for token in [*lexer, "&&"]:  # one shell command per run of words between operators
            if token not in ("&&", "||", "|", ";", ">", ">>", "<<", "<"):
                words.append(token)
                continue
            if "edgetl" in words and (i := words.index("edgetl")) + 1 < len(words):
                out.append((f"{c.doc}:{c.line}", words[i + 1 :]))
            words = []
    for doc in DOCS:
        for n, line in enumerate((ROOT / doc).read_text().splitlines(), 1):
            for span in re.findall(r"`(edgetl [^`]+)`", line):
                words = span.replace("...", "").split()
                out.append((f"{doc}:{n}", words[1:]))
    return out


def _resolve(group, words: list[str]):
    """(the command path, the command) that ``words`` name; None for a group."""
    words = [w for w in words if w != "--debug"]
    path, cmd = (), group
    while _is_group(cmd) and words and words[0] in cmd.commands:
        path, cmd, words = (*path, words[0]), cmd.commands[words[0]], words[1:]
    return path, (None if _is_group(cmd) else cmd)


def test_every_option_a_doc_command_uses_is_in_that_commands_help():
    group = _cli()
    bad = []
    for where, words in _doc_commands():
        path, cmd = _resolve(group, words)
        if cmd is None:
            if (
                words
                and not words[0].startswith("-")
                and words[0] not in ("CMD", "COMMAND")
                and not words[0].startswith("<")
            ):
                bad.append(f"{where}: `edgetl {' '.join(words)}`: no such command")
            continue
        known = _options(cmd)
        for w in words[len(path) :]:
            flag = w.split("=")[0]
            if flag.startswith("-") and flag not in known and flag not in ("-",):
                bad.append(f"{where}: edgetl {' '.join(path)} has no {flag}")
    assert not bad, "\n".join(bad)


def test_every_option_the_prose_names_exists_on_some_command():
    """`--flag` in backticks anywhere in the docs is an option of at least one edgetl command."""
    everything = set().union(*(_options(c) for _, c in _leaves(_cli())), _options(_cli()), {"--help"})
    bad = []
    for doc in DOCS:
        for n, line in enumerate((ROOT / doc).read_text().splitlines(), 1):
            for span in re.findall(r"`([^`]+)`", line):
                for flag in re.findall(r"(?<![\w-])(--[a-z][a-z0-9-]*)", span):
                    if flag not in everything and flag not in FOREIGN:
                        bad.append(f"{doc}:{n}: {flag}")
    assert not bad, "\n".join(bad)
