"""The gradient-check report and the benchmark script run end to end (tiny sizes)."""
import json

import check_gradients


def test_gradient_report_all_cases_pass(capsys):
    assert check_gradients.main([]) == 0
    out = capsys.readouterr().out
    assert "FAIL" not in out and " 0 failed" in out


def test_gradient_report_fails_on_a_wrong_gradient(monkeypatch, capsys):
    import numpy as np
    from layers import Linear

    class Wrong(Linear):
        def backward(self, dy, input_grad=True):
            dx = super().backward(dy, input_grad)
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
