"""The figure runner scripts/reproduce_figures.py and the registry of scripts/figures."""
import html
import io
import os
import subprocess
import sys

import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pytest

import reproduce_figures
from figures import registry
from figures.catalogue import CATALOGUE, GROUP_NAMES
from figures.registry import REGISTRY, FigureSpec, figure, format_caption, load_all

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED_FIGURES = os.path.join(ROOT, "..", "shared", "FIGURES.md")


@pytest.fixture(scope="module")
def loaded():
    failures = load_all()
    return failures


def _fake(fid, func, caption="value {v:.2f}"):
    return FigureSpec(id=fid, source="test", caption=caption, func=func, module="test")


def _ok(quick=False):
    fig, ax = plt.subplots(figsize=(2, 2))
    ax.plot([0, 1], [0, 1])
    return fig, {"v": 0.5, "arr": [1, 2]}


def _boom(quick=False):
    raise RuntimeError("deliberate failure")


def test_all_modules_import(loaded):
    assert loaded == {}, {k: repr(v) for k, v in loaded.items()}


def test_registered_ids_are_in_catalogue(loaded):
    assert REGISTRY, "no figure registered"
    assert set(REGISTRY) <= set(CATALOGUE)
    for spec in REGISTRY.values():
        assert spec.source and spec.id == next(k for k, v in REGISTRY.items() if v is spec)


@pytest.mark.skipif(not os.path.exists(SHARED_FIGURES), reason="../shared/FIGURES.md not beside")
def test_catalogue_matches_figures_md():
    text = open(SHARED_FIGURES, encoding="utf-8").read()
    ids = []
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip()[1:-1].split(" | ")]  # "1/|B|" in a cell
        if line.startswith("| ") and len(cells) == 4 and cells[0] != "id" \
                and not set(cells[0]) <= set("-"):
            ids.append(cells[0])
    assert ids == list(CATALOGUE)
    for g in GROUP_NAMES:
        assert f"## {g}" in text
    # each id under its section's heading
    section, groups = None, {}
    for line in text.splitlines():
        if line.startswith("## "):
            section = line[3:].strip()
        elif line.startswith("| ") and section in GROUP_NAMES:
            cells = [c.strip() for c in line.strip()[1:-1].split(" | ")]
            if cells[0] in CATALOGUE:
                groups[cells[0]] = section
                assert CATALOGUE[cells[0]]["source"] == cells[1]
    assert groups == {fid: e["group"] for fid, e in CATALOGUE.items()}


def test_every_catalogue_id_has_a_title():
    from figures.catalogue import TITLES
    assert set(TITLES) == set(CATALOGUE)


def test_figure_decorator_refuses_unknown_id():
    with pytest.raises(ValueError, match="figure id"):
        figure("no-such-figure", source="x")(lambda quick=False: None)


def test_figure_decorator_refuses_duplicate(monkeypatch):
    monkeypatch.setattr(registry, "REGISTRY", type(REGISTRY)())

    def a(quick=False):
        pass

    def b(quick=False):
        pass

    figure("losses", source="x")(a)
    figure("losses", source="x")(a)  # same function again (module re-import): fine
    with pytest.raises(ValueError, match="registered twice"):
        figure("losses", source="x")(b)


def test_format_caption_falls_back():
    assert format_caption("a {x:.2f}", {"x": 1.0}) == "a 1.00"
    assert format_caption("a {x:.2f} {y}", {"x": 1.0}) == "a {x:.2f} {y}"
    assert format_caption("a {x:.2f}", {"x": [1, 2]}) == "a {x:.2f}"
    assert format_caption("a {x:d}", {"x": 1.5}) == "a {x:d}"
    assert format_caption("", {}) == ""


def test_list(loaded, capsys):
    assert reproduce_figures.main(["--list"]) == 0
    out = capsys.readouterr().out
    for fid in REGISTRY:
        assert fid in out


def test_only_writes_png_and_index(loaded, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(REGISTRY, "losses", _fake("losses", _ok))
    rc = reproduce_figures.main(["--only", "losses", "--out", str(tmp_path), "--quick"])
    assert rc == 0
    assert (tmp_path / "losses.png").stat().st_size > 0
    assert not list(tmp_path.glob("*.svg")) and not list(tmp_path.glob("*.pdf"))
    page = (tmp_path / "index.html").read_text(encoding="utf-8")
    assert "losses.png" in page and "value 0.50" in page and "Losses and optimization" in page
    block = _figure_block(page, "losses")
    assert "Loss functions" in block and "000 §5" not in block  # title; the fake's source is "test"
    out = capsys.readouterr().out
    assert "[1/1] losses" in out


def _figure_block(page, fid):
    start = page.index(f"<figure id='{fid}'")
    return page[start:page.index("</figure>", start)]


def test_default_png_resolution_is_200_dpi():
    assert reproduce_figures.parse_args([]).dpi == 200
    assert reproduce_figures.parse_args([]).format == "png"


@pytest.mark.parametrize("fmt, magic", [("svg", b"<?xml"), ("pdf", b"%PDF")])
def test_vector_format_beside_png(loaded, tmp_path, monkeypatch, fmt, magic):
    monkeypatch.setitem(REGISTRY, "losses", _fake("losses", _ok))
    rc = reproduce_figures.main(["--only", "losses", "--out", str(tmp_path), "--format", fmt])
    assert rc == 0
    assert (tmp_path / "losses.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (tmp_path / f"losses.{fmt}").read_bytes()[:len(magic)] == magic
    assert f"losses.{fmt}" in (tmp_path / "index.html").read_text(encoding="utf-8")


def test_gallery_sections_placeholders_and_numbers(loaded, tmp_path, monkeypatch):
    monkeypatch.setitem(REGISTRY, "losses", _fake("losses", _ok))
    assert reproduce_figures.main(["--only", "losses", "--out", str(tmp_path)]) == 0
    page = (tmp_path / "index.html").read_text(encoding="utf-8")
    positions = [page.index(f"<h2 id='sec-{i}'>{g}</h2>".replace("&", "&amp;"))
                 for i, g in enumerate(GROUP_NAMES)]
    assert positions == sorted(positions)          # the catalogue's sections, in order
    for fid, entry in CATALOGUE.items():
        block = _figure_block(page, fid)
        assert html.escape(entry["source"]) in block or fid == "losses"
        if fid != "losses":
            assert "class='missing'" in block and "Not produced" in block
    losses = _figure_block(page, "losses")
    assert "missing" not in losses and "losses.png" in losses
    assert "<td>v</td><td>0.5</td>" in losses      # the numbers of the run
    assert page.index("<figure id='double-descent'") > page.index(">Generalization</h2>")


class _Terminal(io.StringIO):
    def isatty(self):
        return True


def test_progress_bar_on_a_terminal_only(loaded, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(REGISTRY, "losses", _fake("losses", _ok))
    monkeypatch.delenv("CI", raising=False)
    reproduce_figures.main(["--only", "losses", "--out", str(tmp_path)])
    assert capsys.readouterr().err == ""                    # captured stderr: no terminal, no bar
    term = _Terminal()
    monkeypatch.setattr(sys, "stderr", term)
    assert reproduce_figures.main(["--only", "losses", "--out", str(tmp_path)]) == 0
    assert "figures: 100%" in term.getvalue() and "1/1" in term.getvalue()
    assert "[1/1] losses" in capsys.readouterr().out        # the per-figure line as well
    monkeypatch.setenv("CI", "true")
    term.seek(0)
    term.truncate()
    reproduce_figures.main(["--only", "losses", "--out", str(tmp_path)])
    assert term.getvalue() == ""                            # CI: silent even on a terminal


def test_unknown_id_is_a_clear_error(loaded, tmp_path, capsys):
    rc = reproduce_figures.main(["--only", "no-such-figure", "--out", str(tmp_path)])
    assert rc != 0
    assert "unknown figure id" in capsys.readouterr().err


def test_failing_figure_reported_others_run(loaded, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(REGISTRY, "losses", _fake("losses", _boom))
    monkeypatch.setitem(REGISTRY, "softmax-temperature", _fake("softmax-temperature", _ok))
    rc = reproduce_figures.main(["--only", "losses", "softmax-temperature",
                                 "--out", str(tmp_path)])
    assert rc != 0
    captured = capsys.readouterr()
    assert "FAILED" in captured.out and "deliberate failure" in captured.out
    assert "Traceback" in captured.err and "RuntimeError: deliberate failure" in captured.err
    assert (tmp_path / "softmax-temperature.png").exists()
    assert not (tmp_path / "losses.png").exists()
    page = (tmp_path / "index.html").read_text(encoding="utf-8")
    assert "deliberate failure" in page
    assert plt.get_fignums() == []


def test_command_line_list():
    env = dict(os.environ)
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "reproduce_figures.py"),
                           "--list"], capture_output=True, text=True, env=env, cwd=ROOT,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr


def test_real_figure_end_to_end(loaded, tmp_path, capsys):
    rc = reproduce_figures.main(["--only", "backprop-toy", "softmax-temperature",
                                 "--out", str(tmp_path), "--quick", "--dpi", "40"])
    assert rc == 0
    for fid in ("backprop-toy", "softmax-temperature"):
        assert (tmp_path / f"{fid}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    page = (tmp_path / "index.html").read_text(encoding="utf-8")
    assert "∂L/∂θ₁ = 24" in page          # caption filled with the computed numbers
    assert page.index("softmax-temperature") < page.index("backprop-toy")  # catalogue order
    assert "[2/2]" in capsys.readouterr().out


def test_longest_first_uses_previous_timings(tmp_path):
    ids = ["losses", "tsne-digits", "backprop-toy"]
    # no timings file: the built-in estimates (t-SNE is the slowest figure)
    assert reproduce_figures.longest_first(ids, str(tmp_path))[0] == "tsne-digits"
    (tmp_path / reproduce_figures.TIMINGS_FILE).write_text(
        '{"losses": 50.0, "tsne-digits": 1.0, "backprop-toy": 2.0}', encoding="utf-8")
    assert reproduce_figures.longest_first(ids, str(tmp_path)) == ["losses", "backprop-toy",
                                                                   "tsne-digits"]
    (tmp_path / reproduce_figures.TIMINGS_FILE).write_text("not json", encoding="utf-8")
    assert sorted(reproduce_figures.longest_first(ids, str(tmp_path))) == sorted(ids)
    assert reproduce_figures.default_jobs(2) == 1
    assert 1 <= reproduce_figures.default_jobs(54) <= 2


def test_worker_processes_draw_every_figure_and_report_kernel_time(loaded, tmp_path, capsys):
    """The pool path: figures drawn in 2 spawned workers, the gallery complete, the timings
    saved for the next run's ordering, and the closing line on the time spent in Numba."""
    ids = ["backprop-toy", "softmax-temperature", "shallow-multi-output"]
    rc = reproduce_figures.main(["--only", *ids, "--out", str(tmp_path), "--quick",
                                 "--dpi", "40", "--jobs", "2"])
    assert rc == 0
    out = capsys.readouterr().out
    for fid in ids:
        assert (tmp_path / f"{fid}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert f"] {fid} … " in out
    assert "(2 worker processes)" in out
    assert "Numba: " in out and "s compiling kernels" in out and "loading compiled kernels" in out
    page = (tmp_path / "index.html").read_text(encoding="utf-8")
    assert "∂L/∂θ₁ = 24" in page
    import json
    timings = json.loads((tmp_path / reproduce_figures.TIMINGS_FILE).read_text(encoding="utf-8"))
    assert set(timings) == set(ids) and all(v >= 0 for v in timings.values())


def test_kernel_clock_counts_a_compile():
    """KernelClock sees a fresh kernel's compilation (numba:compile) inside the compiler lock."""
    import numba
    clock = reproduce_figures.KernelClock()
    try:
        @numba.njit
        def twice(x):
            return 2 * x
        assert twice(3) == 6
        comp, lock = clock.read()
    finally:
        clock.close()
    assert 0 < comp <= lock
    assert clock.read() == (comp, lock)          # closed: no longer counting
    twice(2.0)                                   # a new signature after close: not counted
    assert clock.read() == (comp, lock)
