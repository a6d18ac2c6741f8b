"""The bad-input suite (issue 11, item 11): hypothesis throws wrong types, dtypes, ranks, shapes,
non-finite numbers and out-of-range or boolean-looking options at every public constructor and
entry point, and asserts that only a ValueError or TypeError naming the argument comes out and
that nothing changed: no parameter, gradient, buffer, saved call or optimizer state.

Layers come from the gradient-check case tables (scripts/gradcases_*.py), so a new family joins
by its case table; the checks themselves live in tests/badinput.py, where a counting harness can
run them too (issue 11, item 12's table). Hypothesis runs derandomized without deadlines
(tests/conftest.py).
"""
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import badinput as bi

CASES = bi.all_cases()
LAYER_CASES = [(cid, make) for cid, kind, make, _ in CASES if kind == "layer"]
LAYER_IDS = [cid for cid, _ in LAYER_CASES]
UNBUILDABLE = []
CONSTRUCTOR_CASES = bi.constructor_cases(UNBUILDABLE)
STATE_MODELS = bi.state_models()


# ---- 1. forward and backward of every layer case --------------------------------------------------
FORWARD = [(cid, make, cat) for cid, make in LAYER_CASES for cat in bi.INPUT_MUTATIONS]
BACKWARD = [(cid, make, cat) for cid, make in LAYER_CASES for cat in bi.GRADIENT_MUTATIONS]
LOSSES = [(cid, make, cat) for cid, kind, make, _ in CASES if kind == "loss" for cat in bi.INPUT_MUTATIONS]


@pytest.mark.parametrize("case_id,make,category", FORWARD, ids=[f"{c}-{k}" for c, _, k in FORWARD])
@settings(max_examples=5)
@given(data=st.data())
def test_forward_refuses_bad_input_and_changes_nothing(case_id, make, category, data):
    bi.check_forward(case_id, make, category, data)


@pytest.mark.parametrize("case_id,make,category", BACKWARD, ids=[f"{c}-{k}" for c, _, k in BACKWARD])
@settings(max_examples=5)
@given(data=st.data())
def test_backward_refuses_bad_gradient_and_keeps_the_call(case_id, make, category, data):
    bi.check_backward(case_id, make, category, data)


@pytest.mark.parametrize("case_id,make,category", LOSSES, ids=[f"{c}-{k}" for c, _, k in LOSSES])
@settings(max_examples=4)
@given(data=st.data())
def test_loss_forward_refuses_bad_input_and_keeps_the_last_call(case_id, make, category, data):
    bi.check_loss_forward(case_id, make, category, data)


# ---- 2. constructors --------------------------------------------------------------------------------
@pytest.mark.parametrize("cls,args,kwargs,name,bad", [c[1:] for c in CONSTRUCTOR_CASES],
                         ids=[c[0] for c in CONSTRUCTOR_CASES])
@settings(max_examples=10)
@given(data=st.data())
def test_constructor_refuses_bad_argument_by_name(cls, args, kwargs, name, bad, data):
    value = data.draw(st.sampled_from(bad), label=name)
    bi.check_constructor(cls, args, kwargs, name, value)


def test_every_constructor_builds_with_the_inferred_valid_arguments():
    """The valid arguments are read from the case's object (attributes named as the arguments,
    badinput.HELD_AS otherwise): a class whose arguments cannot be read is not tested at all."""
    assert not UNBUILDABLE
    built = {}
    for _, cls, args, kwargs, _, _ in CONSTRUCTOR_CASES:
        built.setdefault(cls, bi.construct(cls, args, kwargs))
    assert len(built) >= 30


# ---- 3. optimizers, state dicts, files, fit ---------------------------------------------------------
@settings(max_examples=25)
@given(data=st.data())
def test_optimizer_step_failing_on_one_parameter_updates_nothing(data):
    bi.check_optimizer_step(data)


@pytest.mark.parametrize("label,model", STATE_MODELS, ids=[m[0] for m in STATE_MODELS])
@settings(max_examples=4)
@given(data=st.data())
def test_load_state_dict_refuses_bad_dicts_by_key_and_writes_nothing(label, model, data):
    bi.check_load_state_dict(label, model, data)


@pytest.mark.parametrize("case_id,make", LAYER_CASES, ids=LAYER_IDS)
@settings(max_examples=3)
@given(data=st.data())
def test_save_load_round_trip_is_bit_exact(case_id, make, data):
    bi.check_save_load_round_trip(case_id, make, data)


@settings(max_examples=12)
@given(data=st.data())
def test_truncated_files_are_named_errors(data):
    bi.check_truncated_file(data)


@pytest.mark.parametrize("argument", bi.FIT_ARGUMENTS)
@settings(max_examples=8)
@given(data=st.data())
def test_fit_refuses_each_bad_argument_before_the_first_step(argument, data):
    bi.check_fit_arguments(argument, data)


@settings(max_examples=20)
@given(data=st.data())
def test_divergence_is_reported_with_epoch_and_step(data):
    bi.check_divergence(data)


@settings(max_examples=5)
@given(data=st.data())
def test_fit_with_one_seed_is_bit_identical_with_dropout_built_without_rng(data):
    bi.check_fit_determinism(data)


@settings(max_examples=10)
@given(data=st.data())
def test_manual_seed_makes_dropout_without_rng_reproducible(data):
    bi.check_manual_seed(data)
