"""Targets: URLs, the saved-targets file and the CLI that edits it, the ssh command line edgetl
builds (BatchMode, -F, host keys never switched off) and its error messages. No network."""

from __future__ import annotations

import pytest
import yaml
from typer.testing import CliRunner

from edgetl.cli import app
from edgetl.errors import ConfigError, EdgetlError
from edgetl.remote import ssh
from edgetl.remote.jobs import placement
from edgetl.remote.targets import parse_url, resolve, resolve_all, targets_file


@pytest.fixture(autouse=True)
def config_home(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.delenv("EDGETL_TARGETS", raising=False)
    monkeypatch.delenv("EDGETL_SSH_CONFIG", raising=False)
    return tmp_path / "config"


def test_urls():
    t = parse_url("ssh://nvidia@orin.local:2222?dir=/data/edgetl&install=never&extras=onnx,openvino")
    assert (t.user, t.host, t.port, t.dir, t.install, t.extras) == (
        "nvidia",
        "orin.local",
        2222,
        "/data/edgetl",
        "never",
        ("onnx", "openvino"),
    )
    assert t.label == "orin.local:2222" and t.destination == "nvidia@orin.local"
    alias = parse_url("ssh://orin")  # a ~/.ssh/config alias: user, port, keys come from there
    assert alias.destination == "orin" and alias.port is None and alias.install == "auto"
    for bad, why in (
        ("orin.local", "expected ssh://"),
        ("http://orin", "expected ssh://"),
        ("ssh://orin:99999", "port"),
        ("ssh://orin?color=red", "unknown option 'color'"),
        ("ssh://orin?install=maybe", "install=auto or install=never"),
        ("ssh://orin?extras=onnx;rm", "extras="),
    ):
        with pytest.raises(ConfigError, match=why):
            parse_url(bad)


def test_targets_cli_add_list_remove(config_home):
    runner = CliRunner()
    added = runner.invoke(app, ["targets", "add", "orin", "ssh://nvidia@orin.local"])
    assert added.exit_code == 0, added.output
    path = config_home / "edgetl" / "targets.yaml"
    assert path == targets_file() and yaml.safe_load(path.read_text()) == {"orin": "ssh://nvidia@orin.local"}
    runner.invoke(app, ["targets", "add", "pi", "ssh://pi@raspberrypi.local"])
    listed = runner.invoke(app, ["targets", "list"])
    assert listed.output.splitlines() == ["orin\tssh://nvidia@orin.local", "pi\tssh://pi@raspberrypi.local"]
    assert resolve("@orin").label == "orin" and resolve("local") is None
    assert runner.invoke(app, ["targets", "remove", "orin"]).exit_code == 0
    assert yaml.safe_load(path.read_text()) == {"pi": "ssh://pi@raspberrypi.local"}
    with pytest.raises(ConfigError, match="no saved target 'orin'.*edgetl targets add orin"):
        resolve("@orin")
    with pytest.raises(ConfigError, match="no target named 'orin'"):
        runner.invoke(app, ["targets", "remove", "orin"], catch_exceptions=False)
    with pytest.raises(ConfigError, match="target name"):
        runner.invoke(app, ["targets", "add", "local", "ssh://x"], catch_exceptions=False)
    with pytest.raises(ConfigError, match="given twice"):
        resolve_all(["@pi", "ssh://pi@raspberrypi.local:22?dir=/x", "@pi"])


def test_a_broken_targets_file_is_named(config_home):
    (config_home / "edgetl").mkdir(parents=True)
    (config_home / "edgetl" / "targets.yaml").write_text("- just\n- a list\n")
    with pytest.raises(ConfigError, match="targets.yaml: expected 'name: ssh://user@host'"):
        resolve("@orin")


def test_ssh_command_is_batch_mode_and_never_disables_host_keys(tmp_path, monkeypatch):
    cfg = tmp_path / "ssh_config"
    cfg.write_text("Host *\n")
    monkeypatch.setenv("EDGETL_SSH_CONFIG", str(cfg))
    cmd = ssh.ssh_command(parse_url("ssh://nvidia@orin:2222"))
    assert cmd[1:3] == ["-F", str(cfg)] and "BatchMode=yes" in cmd and cmd[-2:] == ["--", "nvidia@orin"]
    assert "-p" in cmd and cmd[cmd.index("-p") + 1] == "2222"
    assert not any("StrictHostKeyChecking" in c or "UserKnownHostsFile" in c for c in cmd)
    monkeypatch.setenv("EDGETL_SSH_CONFIG", str(tmp_path / "missing"))
    with pytest.raises(EdgetlError, match="EDGETL_SSH_CONFIG=.*no such file"):
        ssh.ssh_command(parse_url("ssh://orin"))


def test_ssh_failures_are_explained():
    t = parse_url("ssh://nvidia@orin:2222")
    unknown = ssh._explain(
        t, "No ED25519 host key is known for [orin]:2222.\r\nHost key verification failed."
    )
    assert "not in known_hosts" in unknown and "ssh-keyscan -p 2222 orin" in unknown
    assert "CHANGED" in ssh._explain(t, "@@@ WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED! @@@")
    assert "ssh-copy-id nvidia@orin" in ssh._explain(t, "nvidia@orin: Permission denied (publickey).")
    refused = ssh._explain(t, "ssh: connect to host orin port 2222: Connection refused")
    said = "ssh: connect to host orin port 2222: Connection refused"
    assert refused == f"orin:2222: cannot reach nvidia@orin port 2222: {said}"


def test_inputs_land_under_their_own_names_and_sidecars_beside_their_engine(tmp_path):
    engine, sidecar, img = tmp_path / "m.engine", tmp_path / "m.engine.json", tmp_path / "a" / "m.engine"
    assert placement((engine, sidecar, img)) == {
        engine: "in/0/m.engine",
        sidecar: "in/0/m.engine.json",
        img: "in/2/m.engine",
    }


def test_merge_labels_rows_by_target_and_maps_paths_back(tmp_path):
    from edgetl.bench.config import BenchConfig
    from edgetl.bench.outputs import latency_points
    from edgetl.remote.bench import merge
    from edgetl.remote.jobs import Outcome

    model = tmp_path / "m.onnx"
    model.write_bytes(b"onnx bytes")
    config = BenchConfig(artifacts=(model,), on=("@orin", "ssh://pi@pi.local"))

    def remote_report(p50):
        compute = {"runs": 5, "p50_ms": p50, "p90_ms": p50, "p99_ms": p50, "mean_ms": p50, "std_ms": 0.0}
        compute |= {"p50_ci95_ms": [p50, p50], "throughput_img_s": 1e3 / p50}
        row = {
            "artifact": "in/0/m.onnx",
            "kind": "onnx",
            "backend": "onnxruntime",
            "batch": 1,
            "threads": None,
        }
        row |= {"compute": compute, "stability": {"by": "segment", "p50_ms": [p50], "spread": 0.0}}
        return {
            "results": [row],
            "skipped": [{"artifact": "in/0/m.onnx", "backend": "openvino", "reason": "not installed"}],
            "artifacts": {"in/0/m.onnx": {"sha256": "x", "bytes": 10, "kind": "onnx"}},
            "warnings": ["p50 moved 12% between segments"],
            "environment": {"cpu": "Cortex-A78AE"},
            "contention": {},
            "power": {"available": True, "source": "tegrastats", "scope": "VDD_IN"},
        }

    outcomes = [
        Outcome(
            "orin", "ssh://nvidia@orin", data=remote_report(2.0), info={"runtime": "present", "bytes_sent": 0}
        ),
        Outcome(
            "pi.local", "ssh://pi@pi.local", error="pi.local: cannot reach pi@pi.local: Connection refused"
        ),
    ]
    report = merge(config, outcomes, {"cpu": "workstation"})
    assert [(r.target, r.artifact) for r in report.results] == [("orin", str(model))]
    assert report.skipped[0].target == "orin" and report.skipped[0].artifact == str(model)
    assert report.warnings == ("orin: p50 moved 12% between segments",)
    assert report.targets["orin"].environment.model_dump() == {"cpu": "Cortex-A78AE"}
    assert report.targets["orin"].power.source == "tegrastats"
    assert report.targets["pi.local"].error.endswith("Connection refused")
    assert report.artifacts[str(model)].kind == "onnx"
    points = latency_points(report.results, {str(model): 0.9})
    assert [p.label for p in points] == ["m.onnx @ orin"]
