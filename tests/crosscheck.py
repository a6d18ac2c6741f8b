"""One PyTorch cross-check: an engine layer and its torch.nn counterpart, forward and every gradient.

    res = crosscheck(layer, torch_module, x1, x2, ...)

1. copies the engine layer's weights into the torch module with `load_state_dict` (the keys must
   be the same: a tied parameter appears under every name in both state dicts);
2. runs both forwards in float64 on the same inputs (several inputs; integer and boolean inputs,
   such as token ids and masks, are passed as they are and get no gradient);
3. drives both backwards with the same random upstream gradients, one per output array (an
   output may be a tuple, nested as torch nests LSTM's (y, (h_n, c_n))); the outputs listed in
   `none_outputs` (depth-first indices) get the upstream gradient None;
4. compares the outputs, every input gradient and every parameter gradient, the parameters named
   as `named_parameters()` names them (a shared parameter once, under its first name; torch's
   `named_parameters()` must name the same ones).

Returns a CrossCheck with both sides' arrays, for further checks by the caller. Run it inside
`with engine.reference_kernels():` to cross-check the reference kernels.
"""
from dataclasses import dataclass, field

import numpy as np

from engine.core import leaves, rebuild


@dataclass
class CrossCheck:
    outputs: list                   # the engine's output arrays (depth first)
    torch_outputs: list
    input_grads: list               # one per input: the engine's gradient (None for integer inputs)
    torch_input_grads: list
    param_grads: dict = field(default_factory=dict)        # name -> engine gradient
    torch_param_grads: dict = field(default_factory=dict)  # name -> torch gradient
    upstream: list = field(default_factory=list)           # the upstream gradients (None where skipped)


def _is_float(a):
    return isinstance(a, np.ndarray) and np.issubdtype(a.dtype, np.floating)


def crosscheck(layer, torch_module, *inputs, train=True, seed=1, none_outputs=(), rtol=1e-12,
               atol=1e-12, load=True):
    """Forward, backward and compare (module docstring). `load=False` keeps the torch module's
    weights (the caller copied them already, e.g. the other way round)."""
    import torch

    torch_module = torch_module.double()
    if load:
        torch_module.load_state_dict({k: torch.from_numpy(np.array(v, np.float64))
                                      for k, v in layer.state_dict().items()})
    names = [n for n, _ in layer.named_parameters()]
    tnames = [n for n, _ in torch_module.named_parameters()]
    assert names == tnames, f"parameter names differ: engine {names}, torch {tnames}"
    torch_module.train(train)
    torch_module.zero_grad(set_to_none=True)
    layer.zero_grad()

    # ---- forward ----
    y = layer.forward(*inputs, train=train)
    xts = [torch.from_numpy(x.copy()).requires_grad_(_is_float(x)) for x in inputs]
    yt = torch_module(*xts)
    ys = leaves(y)
    yts = leaves(yt)
    assert len(ys) == len(yts), f"the engine returned {len(ys)} outputs, torch {len(yts)}"
    for k, (a, t) in enumerate(zip(ys, yts)):
        t = t.detach().numpy()
        assert a.shape == t.shape, f"output {k}: engine shape {a.shape}, torch {t.shape}"
        np.testing.assert_allclose(a, t, rtol=rtol, atol=atol, err_msg=f"output {k}")

    # ---- backward: one random upstream gradient per floating output (None where asked) ----
    rng = np.random.default_rng(seed)
    Gs = [None if (k in none_outputs or not _is_float(a)) else rng.standard_normal(a.shape).astype(a.dtype)
          for k, a in enumerate(ys)]
    G = rebuild(y, iter(Gs))
    grads = layer.backward(*G) if isinstance(y, tuple) else layer.backward(G)
    dxs = list(grads) if len(inputs) > 1 else [grads]
    pairs = [(t, torch.from_numpy(g)) for t, g in zip(yts, Gs) if g is not None]
    torch.autograd.backward([t for t, _ in pairs], [g for _, g in pairs])

    # ---- compare every input gradient ----
    tdxs = []
    assert len(dxs) == len(inputs), f"backward returned {len(dxs)} input gradients for {len(inputs)} inputs"
    for i, (x, dx, xt) in enumerate(zip(inputs, dxs, xts)):
        if not _is_float(x):
            assert dx is None, f"input {i} ({x.dtype}): expected None as its gradient"
            tdxs.append(None)
            continue
        tdx = np.zeros_like(x) if xt.grad is None else xt.grad.numpy()
        tdxs.append(tdx)
        assert dx is not None and dx.shape == x.shape, f"input {i}: gradient {dx!r:.60}"
        np.testing.assert_allclose(dx, tdx, rtol=rtol, atol=atol, err_msg=f"input {i}")

    # ---- compare every parameter gradient (a shared parameter once) ----
    tparams = dict(torch_module.named_parameters())
    res = CrossCheck([a.copy() for a in ys], [t.detach().numpy() for t in yts], dxs, tdxs, upstream=Gs)
    for n, p in layer.named_parameters():
        tg = tparams[n].grad
        tg = np.zeros(p.shape) if tg is None else tg.numpy()
        res.param_grads[n], res.torch_param_grads[n] = p.grad.copy(), tg
        np.testing.assert_allclose(p.grad, tg, rtol=rtol, atol=atol, err_msg=n)
    return res


def torch_residual(torch, block, shortcut=None):
    """The torch counterpart of layers.Residual(block[, shortcut]): y = block(x) + (x or shortcut(x))."""
    class Residual(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.block = block
            if shortcut is not None:
                self.shortcut = shortcut

        def forward(self, x):
            return self.block(x) + (x if shortcut is None else self.shortcut(x))
    return Residual()


def torch_concat(torch, *branches, dim):
    """The torch counterpart of layers.Concat(*branches, dim): y = cat([b(x) for b in branches], dim)."""
    class Concat(torch.nn.Module):
        def __init__(self):
            super().__init__()
            for i, b in enumerate(branches):
                self.add_module(str(i), b)

        def forward(self, x):
            return torch.cat([b(x) for b in branches], dim=dim)
    return Concat()


def step_both(torch, opt, topt, params, tparams, grads):
    """One step of an engine optimizer and a torch.optim one from the same gradients; then the
    parameters must agree to 1e-12 (float64)."""
    for p, tp, g in zip(params, tparams, grads):
        p.grad[...] = g
        tp.grad = torch.tensor(g)
    opt.step()
    topt.step()
    for p, tp in zip(params, tparams):
        np.testing.assert_allclose(p.value, tp.detach().numpy(), rtol=1e-12, atol=1e-14)
