"""The setup helper and the benchmark entry points run on real inputs."""
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_apt_ensure_is_silent_when_packages_are_installed():
    p = subprocess.run([str(ROOT / "scripts" / "apt-ensure"), "bash", "coreutils"], capture_output=True, text=True)
    assert p.returncode == 0 and p.stdout == "" and p.stderr == ""


def test_overhead_benchmark_runs_on_digits(capsys):
    from bench.overhead import main

    result = main(["--rounds", "1", "--data", "digits"])
    assert result["trainer_s"] > 0 and result["plain_s"] > 0
    assert result["ratio"] == result["trainer_s"] / result["plain_s"]
    assert "median s/epoch" in capsys.readouterr().out
