"""The README's commands are the ones CI runs."""
import os
import re

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def readme_commands():
    text = open(os.path.join(ROOT, "README.md")).read()
    return re.findall(r"```bash\n(.+?)\n```", text)


def test_readme_starts_with_two_setup_commands():
    cmds = readme_commands()
    assert len(cmds) >= 2
    assert "reproduce_figures.py" in cmds[0] and cmds[0].startswith("pip install")
    assert "pytest" in cmds[1] and "[test]" in cmds[1]


def test_ci_runs_exactly_the_readme_test_command():
    ci = open(os.path.join(ROOT, ".ci", "run")).read().splitlines()
    lines = [l.strip() for l in ci if l.strip() and not l.lstrip().startswith("#")]
    assert readme_commands()[1] in lines
    # the only other steps: strict mode, cd, and the PyTorch CPU wheel
    others = [l for l in lines if l != readme_commands()[1]]
    assert all(l.startswith(("set -", "cd ", "pip install torch==")) for l in others), others
