"""The README's Python example runs as written, and its two commands are the ones CI uses."""
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def run_block(marker: str, tmp_path, monkeypatch, capsys) -> str:
    """Run the README's Python block after ``<!-- marker`` in ``tmp_path``; what it printed."""
    code = re.search(r"```python\n(.*?)```", README.split(f"<!-- {marker}")[1], re.S).group(1)
    monkeypatch.chdir(tmp_path)
    exec(compile(code, "README.md", "exec"), {})
    return capsys.readouterr().out


def test_python_example_runs(tmp_path, monkeypatch, capsys):
    out = run_block("README-EXAMPLE", tmp_path, monkeypatch, capsys)
    assert "val BCE" in out and "torch.Size([8, 30])" in out
    assert len(list((tmp_path / "runs").iterdir())) == 1


def test_pretraining_example_runs(tmp_path, monkeypatch, capsys):
    lines = run_block("README-PRETRAIN", tmp_path, monkeypatch, capsys).strip().splitlines()
    assert len(lines) == 8 and {line.split()[1] for line in lines} == {"scratch", "frozen", "finetuned", "pixels"}


def test_dimensionality_reduction_example_runs(tmp_path, monkeypatch, capsys):
    lines = run_block("README-DIMRED", tmp_path, monkeypatch, capsys).strip().splitlines()
    assert lines[0].startswith("3-D demo: AE MSE") and [line.split()[0] for line in lines[1:]] == ["2", "8"]
    assert len(list((tmp_path / "runs").iterdir())) == 5   # four autoencoders and the comparison


def test_two_commands_at_the_top_and_ci_uses_the_test_command():
    first_block = re.search(r"```bash\n(.*?)```", README, re.S).group(1)
    commands = [line.split("#")[0].strip() for line in first_block.strip().splitlines()]
    assert commands == ["make run", "make test"]
    assert "make test" in (ROOT / ".ci" / "run").read_text()
