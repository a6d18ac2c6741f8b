"""The gradient-check report and the benchmark script run end to end (tiny sizes)."""
import json

import check_gradients


def test_gradient_report_prints_a_row_per_case(capsys):
    # every case runs in tests/test_gradient_cases.py; here only the report's own output
    assert check_gradients.main(["dense/linear(4,3,2,bias=True)"]) == 0
    out = capsys.readouterr().out
    assert "PASS  dense/linear(4,3,2,bias=True)" in out and "1 passed, 0 failed" in out
    assert check_gradients.main(["--reference", "dense/linear(4,3,2,bias=True)"]) == 0
    assert "reference kernels" in capsys.readouterr().out


def test_gradient_report_fails_on_a_wrong_gradient(monkeypatch, capsys):
    import numpy as np
    from layers import Linear

    class Wrong(Linear):
        def backward(self, dy, *, input_grad=True):
            dx = super().backward(dy, input_grad=input_grad)
            self.weight.grad *= 1.01
            return dx

    monkeypatch.setattr(check_gradients, "collect",
                        lambda: [("test", "wrong", lambda rng: ("layer", Wrong(3, 2, rng=rng), [rng.standard_normal((4, 3))]))])
    assert check_gradients.main([]) == 1
    assert "FAIL" in capsys.readouterr().out


def test_benchmark_quick_writes_json(tmp_path):
    import benchmark
    path = tmp_path / "b.json"
    assert benchmark.main(["--quick", "--only", "dense", "--json", str(path)]) == 0
    data = json.loads(path.read_text())
    assert data["machine"]["cores"] >= 1 and data["rows"]
    assert all(r["engine_ms"] > 0 for r in data["rows"])


def test_interleaved_times_each_function_in_blocks_with_a_rest():
    from benchlib import interleaved
    calls = []
    fns = {"a": lambda: calls.append("a"), "b": lambda: calls.append("b")}
    res = interleaved(fns, repeats=7, warmup=1, block=3, rest=0.0)
    assert set(res) == {"a", "b"}
    for median, (lo, hi) in res.values():
        assert 0 <= lo <= median <= hi
    # warmups, then per block one untimed call and up to 3 timed ones, alternating a and b
    assert calls[:2] == ["a", "b"]
    assert calls[2:6] == ["a"] * 4 and calls[6:10] == ["b"] * 4
    assert calls.count("a") == calls.count("b") == 1 + 3 + 7
