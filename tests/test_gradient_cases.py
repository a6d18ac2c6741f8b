"""Every gradient case of every family (scripts/gradcases_<family>.py, the tables the gradient
report reads) against central differences, on the fast kernels and on the reference kernels."""
import pytest

from check_gradients import TOL, collect, run_case

CASES = collect()


@pytest.mark.parametrize("path", ["fast", "reference"])
@pytest.mark.parametrize("family,name,make", CASES, ids=[f"{f}/{n}" for f, n, _ in CASES])
def test_gradient_case(family, name, make, path):
    res = run_case(make, reference=(path == "reference"))
    assert res.passed(TOL), f"{family}/{name} ({path}): {res}"
