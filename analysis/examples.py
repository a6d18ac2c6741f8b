"""Networks the notes use as worked examples, built from the engine's layers with given weights."""
from engine.checks import check_array, check_float, check_int, check_real_array
from engine.core import Layer, Sequential
from layers import Linear, ReLU


def shallow_network(W, b, w_out, b_out=0.0, activation=None):
    """The shallow network of 000 §2: y = β_1 + Ω_1 a[β_0 + Ω_0 x], one output.

    W (D, D_i) = Ω_0, b (D,) = β_0, w_out (D,) = Ω_1, b_out = β_1; `activation` a Layer
    (default ReLU). Returns Sequential(Linear(D_i, D), activation, Linear(D, 1))."""
    W = check_real_array("W", W, ndim=2)
    b = check_real_array("b", b, shape=(W.shape[0],))
    w_out = check_array("w_out", check_real_array("w_out", w_out).reshape(-1), shape=(W.shape[0],))
    b_out = check_float("b_out", b_out)
    if activation is not None and not isinstance(activation, Layer):
        raise TypeError(f"activation: expected a Layer (e.g. ReLU()) or None, got {type(activation).__name__}")
    hidden = Linear(W.shape[1], W.shape[0])
    hidden.weight.value[:] = W
    hidden.bias.value[:] = b
    out = Linear(W.shape[0], 1)
    out.weight.value[:] = w_out.reshape(1, -1)
    out.bias.value[:] = b_out
    return Sequential(hidden, activation if activation is not None else ReLU(), out)


def tent_network(L):
    """Telgarsky's tent map t(x) = 2 ReLU(x) − 4 ReLU(x − ½) composed L times (L hidden layers of
    width 2): 2^L linear pieces on [0, 1] (004 §2.4.10)."""
    L = check_int("L", L, low=1)
    mods = []
    for k in range(L):
        lin = Linear(1 if k == 0 else 2, 2)
        lin.weight.value[:] = [[1.0], [1.0]] if k == 0 else [[2.0, -4.0], [2.0, -4.0]]
        lin.bias.value[:] = [0.0, -0.5]
        mods += [lin, ReLU()]
    out = Linear(2, 1)
    out.weight.value[:] = [[2.0, -4.0]]
    out.bias.value[:] = 0.0
    return Sequential(*mods, out)
