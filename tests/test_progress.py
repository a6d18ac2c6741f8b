"""engine.progress: one tqdm bar, shown on a terminal or in Jupyter, silent in pipes and CI."""
import io
import sys
import types

import pytest

from engine import progress as progress_mod
from engine.progress import in_jupyter, progress, show_progress


class _Terminal(io.StringIO):
    """A text stream that says it is a terminal."""

    def isatty(self):
        return True


@pytest.fixture
def no_ci(monkeypatch):
    monkeypatch.delenv("CI", raising=False)


@pytest.fixture
def no_jupyter(monkeypatch):
    monkeypatch.delitem(sys.modules, "ipykernel", raising=False)
    monkeypatch.delitem(sys.modules, "IPython.utils._process_emscripten", raising=False)


def test_silent_when_stderr_is_not_a_tty(monkeypatch, no_ci, no_jupyter):
    pipe = io.StringIO()
    monkeypatch.setattr(sys, "stderr", pipe)
    assert not show_progress("auto")
    bar = progress(range(5), desc="work")
    assert bar.disable
    assert list(bar) == [0, 1, 2, 3, 4]          # a disabled bar still iterates
    with progress(total=4, desc="work") as bar:  # and its methods are no-ops
        bar.update(2)
        bar.set_postfix(loss="0.5")
    assert pipe.getvalue() == ""


def test_shown_when_forced(no_ci, no_jupyter):
    out = io.StringIO()                          # not a terminal: forced anyway
    with progress(total=4, desc="work", enabled=True, file=out) as bar:
        bar.update(3)
        bar.update(1)
        bar.set_postfix(loss="0.5")
    text = out.getvalue()
    assert "work" in text and "4/4" in text and "loss=0.5" in text


def test_forced_off_on_a_terminal(no_ci):
    term = _Terminal()
    bar = progress(range(3), enabled=False, file=term)
    assert bar.disable and list(bar) == [0, 1, 2]
    assert term.getvalue() == ""


def test_auto_shows_on_a_terminal_unless_ci(monkeypatch, no_jupyter):
    term = _Terminal()
    monkeypatch.setattr(sys, "stderr", term)
    monkeypatch.delenv("CI", raising=False)
    assert show_progress("auto")
    with progress(total=2, desc="epoch") as bar:
        assert not bar.disable
        bar.update(2)
    assert "2/2" in term.getvalue()

    for value in ("true", "1", "yes"):
        monkeypatch.setenv("CI", value)
        assert not show_progress("auto")
        assert progress(total=2).disable
    for value in ("", "0", "false"):             # CI explicitly off: the terminal decides
        monkeypatch.setenv("CI", value)
        assert show_progress("auto")


def test_forced_on_wins_over_ci(monkeypatch):
    monkeypatch.setenv("CI", "true")
    assert show_progress(True) and not show_progress(False)


def test_auto_follows_the_given_file(monkeypatch, no_ci, no_jupyter):
    monkeypatch.setattr(sys, "stderr", io.StringIO())
    assert not progress(total=1, file=_Terminal()).disable  # a terminal given as file
    monkeypatch.setattr(sys, "stderr", _Terminal())
    assert progress(total=1, file=io.StringIO()).disable    # a pipe given as file


def test_auto_shows_in_jupyter(monkeypatch, no_ci):
    monkeypatch.setattr(sys, "stderr", io.StringIO())   # a kernel's streams are no terminals
    monkeypatch.setitem(sys.modules, "ipykernel", types.ModuleType("ipykernel"))
    assert in_jupyter() and show_progress("auto")
    monkeypatch.setenv("CI", "true")                    # notebooks executed in CI stay silent
    assert not show_progress("auto")


def test_bad_enabled_is_refused():
    with pytest.raises(ValueError, match="enabled"):
        progress(total=1, enabled="yes")
    with pytest.raises(ValueError, match="enabled"):
        show_progress(None)


def test_uses_tqdm_auto():
    from tqdm.auto import tqdm
    assert progress_mod.tqdm is tqdm
    assert isinstance(progress(total=1, enabled=False), tqdm)
