"""The README and the documentation site: every code block runs here or says why not, and the site builds."""
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
# A fenced block, with the HTML comment on the line above it: <!-- test: NAME --> or <!-- not run: REASON -->
BLOCK = re.compile(r"^(?P<above>[^\n]*)\n```(?P<lang>[\w-]*)\n(?P<code>.*?)^```$", re.M | re.S)
MARK = re.compile(r"<!-- (?:test: (?P<test>[\w-]+)|not run: (?P<reason>.{10,})) -->$")


def blocks() -> list[tuple[str, str | None, str | None, str]]:
    """(page, test name, reason not run, code) of every fenced code block of the README and the docs."""
    found = []
    for page in PAGES:
        for m in BLOCK.finditer(page.read_text()):
            mark = MARK.search(m.group("above"))
            found.append((page.name, mark and mark.group("test"), mark and mark.group("reason"), m.group("code")))
    return found


def block(name: str) -> str:
    (code,) = [code for _, test, _, code in blocks() if test == name]
    return code


def run_python(name: str, tmp_path, monkeypatch, capsys) -> str:
    """Run the Python block ``name`` in ``tmp_path``; what it printed."""
    monkeypatch.chdir(tmp_path)
    exec(compile(block(name), name, "exec"), {})
    return capsys.readouterr().out


def test_every_code_block_runs_in_a_test_or_says_why_not():
    unmarked = [(page, code[:60]) for page, test, reason, code in blocks() if not (test or reason)]
    assert not unmarked, f"blocks with neither <!-- test: NAME --> nor <!-- not run: REASON -->: {unmarked}"
    named = [test for _, test, _, _ in blocks() if test]
    assert sorted(named) == sorted(BLOCK_TESTS), "each named block has exactly one test below, and no test is idle"


def test_readme_python_block_trains_and_encodes(tmp_path, monkeypatch, capsys):
    out = run_python("readme-python", tmp_path, monkeypatch, capsys)
    assert "val BCE" in out and "torch.Size([8, 30]) torch.Size([8, 1, 8, 8])" in out
    assert len(list((tmp_path / "runs").iterdir())) == 1


def test_readme_cli_block_runs_line_by_line_in_process(tmp_path, monkeypatch, capsys):
    from aelab.cli import main

    monkeypatch.setenv("AELAB_RUNS_DIR", str(tmp_path))
    for line in block("readme-cli").strip().splitlines():
        argv = shlex.split(line, comments=True)
        assert argv[:3] == ["python", "-m", "aelab"], line
        assert main(argv[3:]) in (0, None), line
    runs = sorted(p.name for p in tmp_path.iterdir())
    assert runs[0] == "first" and runs[1].startswith("first-more-") and len(runs) == 2
    assert "first" in capsys.readouterr().out


def test_python_page_example_runs(tmp_path, monkeypatch, capsys):
    out = run_python("python-example", tmp_path, monkeypatch, capsys)
    assert "val BCE" in out and "torch.Size([8, 30])" in out
    assert len(list((tmp_path / "runs").iterdir())) == 1


def test_pretraining_example_runs(tmp_path, monkeypatch, capsys):
    lines = run_python("python-pretrain", tmp_path, monkeypatch, capsys).strip().splitlines()
    assert len(lines) == 8 and {line.split()[1] for line in lines} == {"scratch", "frozen", "finetuned", "pixels"}


def test_dimensionality_reduction_example_runs(tmp_path, monkeypatch, capsys):
    lines = run_python("python-dimred", tmp_path, monkeypatch, capsys).strip().splitlines()
    assert lines[0].startswith("3-D demo: AE MSE") and [line.split()[0] for line in lines[1:]] == ["2", "8"]
    assert len(list((tmp_path / "runs").iterdir())) == 5   # four autoencoders and the comparison


BLOCK_TESTS = {"readme-python", "readme-cli", "python-example", "python-pretrain", "python-dimred"}


def test_two_commands_at_the_top_and_ci_uses_the_test_command():
    first_block = re.search(r"```bash\n(.*?)```", (ROOT / "README.md").read_text(), re.S).group(1)
    commands = [line.split("#")[0].strip() for line in first_block.strip().splitlines()]
    assert commands == ["make run", "make test"]
    assert "make test" in (ROOT / ".ci" / "run").read_text()


def test_readme_stays_short():
    text = (ROOT / "README.md").read_text()
    assert len(text.splitlines()) <= 150 and len(text.split()) <= 1500


def test_readme_links_to_docs_that_exist():
    targets = re.findall(r"\]\((docs/[^)#]+)", (ROOT / "README.md").read_text())
    assert targets and all((ROOT / t).is_file() for t in targets), targets


def test_the_documentation_site_builds_offline_and_strict(tmp_path):
    pytest.importorskip("mkdocs", reason="the docs tools come with requirements-dev.txt")
    p = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path)],
                       cwd=ROOT, capture_output=True, text=True, timeout=300,
                       env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    assert p.returncode == 0, p.stderr[-3000:]
    reference = (tmp_path / "reference" / "index.html").read_text()
    assert 'id="aelab.train"' in reference and 'id="aelab.models"' in reference   # modules found by walking
    assert "Latest results" in (tmp_path / "benchmarks" / "index.html").read_text()
