import json
import subprocess
import sys

import pytest

from aelab.cli import main
from conftest import run_cli


def run_process(*args):
    return subprocess.run([sys.executable, "-m", "aelab", *args], capture_output=True, text=True)


def test_train_json_prints_exactly_one_object(tmp_path):
    p = run_cli("train", "--preset", "stacked", "--data", "digits", "--epochs", "2", "--hidden", "32",
                "--latent", "4", "--lr", "0.5", "--runs-dir", str(tmp_path), "--name", "cli-run", "--json")
    assert p.returncode == 0, p.stderr
    summary = json.loads(p.stdout)   # the whole of stdout is one object
    assert summary["run"] == "cli-run" and summary["epochs"] == 2 and summary["status"] == "finished"
    assert 0 < summary["val_loss"] < 1 and summary["seconds_per_epoch"] > 0
    cfg = json.loads((tmp_path / "cli-run" / "config.json").read_text())["config"]
    assert cfg["model"]["hidden"] == [32] and cfg["train"]["lr"] == 0.5 and cfg["preset"] == "stacked"

    listed = json.loads(run_cli("runs", "--runs-dir", str(tmp_path), "--json").stdout)
    assert [r["run"] for r in listed["runs"]] == ["cli-run"]
    ev = run_cli("eval", "cli-run", "--runs-dir", str(tmp_path), "--json", "--no-probes")
    assert ev.returncode == 0, ev.stderr
    assert json.loads(ev.stdout)["test"]["ssim"] > 0


@pytest.mark.parametrize("args, message", [
    (["--lr", "-1"], "train.lr"),
    (["--lr", "fast"], "expected float"),
    (["--activation", "swish"], "model.activation"),
    (["--preset", "nope"], "invalid choice"),
    (["--colour", "red"], "unrecognized arguments"),
    (["--batch-size", "100000", "--data", "digits"], "larger than the training set"),
])
def test_bad_flags_are_usage_errors(args, message, tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        main(["train", "--runs-dir", str(tmp_path), *args])
    assert e.value.code == 2
    assert message in capsys.readouterr().err


def test_data_command():
    p = run_process("data", "--json")   # the one check of `python -m aelab` as a process of its own
    doc = json.loads(p.stdout)
    assert {d["name"] for d in doc["datasets"]} == {"fashion-mnist", "mnist", "digits"}
    assert doc["default"] in ("fashion-mnist", "digits") and doc["reason"]


def test_eval_of_missing_run_fails_cleanly(tmp_path):
    p = run_cli("eval", "ghost", "--runs-dir", str(tmp_path))
    assert p.returncode == 1 and "no run named 'ghost'" in p.stderr


@pytest.mark.parametrize("change", [{}, {"model.latent": 2, "model.tied": True, "train.lr": 0.25},
                                    {"model.hidden": (64, 16), "model.noise": "dropout", "model.noise_level": 0.3}])
def test_command_line_reproduces_the_config(change):
    import shlex

    from aelab.cli import build_parser, config_from_args
    from aelab.config import with_overrides
    from aelab.presets import command_line, preset

    cfg = with_overrides(preset("stacked", "digits"), change)
    line = command_line(cfg)
    args = build_parser().parse_args(shlex.split(line)[3:])
    assert config_from_args(args) == cfg
