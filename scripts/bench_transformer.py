"""Benchmark group "transformer": one GPT training step (issue 13, item 10: 4 layers, width 128,
4 heads, context 128, batch 16, the bundled corpus's 65 characters) against the same model in
PyTorch with the same weights, same thread count, same process (benchlib.interleaved); and one
TransformerEncoderLayer forward + backward at that width.

"BLAS floor" row (the float32 GELU case): in the same alternation, only the step's products: every
Linear's forward and backward (its GEMMs, with the bias add and sum they carry) at the step's shapes
(per layer the self-attention's fused in-projection D → 3D and out-projection D → D, then D → 4D →
D; the tied head D → V), and the attention's six products per problem and causal block
(bench_attention.sdpa_floor, heads as contiguous (T, D/H) arrays where the engine reads them in place
from the projection). No softmax, LayerNorm, GELU, loss, residual sums, clipping or AdamW.

A training step on either side: zero the gradients, forward, mean cross-entropy over the 2048
tokens, backward, clip the gradients' norm to 1, AdamW step. Engine: layers.gpt.GPT on its fast
kernels. Peer: the model of tests/test_gpt_end_to_end.py (torch.nn.Embedding, TransformerEncoderLayer
(norm_first=True, activation="gelu", batch_first=True) called with is_causal and the causal mask,
LayerNorm, a tied nn.Linear head), autograd, torch.optim.AdamW; its attention runs in
scaled_dot_product_attention (the causal hint, no weights needed).

    python scripts/bench_transformer.py [--quick] [--threads N]     (N: both sides' thread count)
"""
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(1, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from benchlib import interleaved, main, row, torch_or_none  # noqa: E402
from torch_peers import torch_gpt  # noqa: E402

V = 65
# layers, width, heads, T, B, dtype, activation (ReLU beside GELU: the exact erf's share of the step)
GPT_CASES = [(4, 128, 4, 128, 16, np.float32, "gelu"), (4, 128, 4, 128, 16, np.float32, "relu"),
             (4, 128, 4, 128, 16, np.float64, "gelu")]
LAYER_CASES = [(128, 4, 128, 16, np.float32)]                                      # width, heads, T, B


def gpt_fns(L, D, H, T, B, dtype, activation="gelu", seed=0):
    from engine.losses import CrossEntropyLoss
    from engine.optim import AdamW, clip_grad_norm
    from layers.gpt import GPT
    rng = np.random.default_rng(seed)
    model = GPT(V, T, n_layer=L, n_head=H, n_embd=D, activation=activation, dtype=dtype, rng=seed)
    opt = AdamW(model.parameters(), lr=1e-4)
    loss = CrossEntropyLoss()
    x = rng.integers(0, V, (B, T))
    y = rng.integers(0, V, (B, T))

    def engine_step():
        opt.zero_grad()
        logits = model.forward(x)
        loss.forward(logits.reshape(-1, V), y.reshape(-1))
        model.backward(loss.backward().reshape(logits.shape))
        clip_grad_norm(model.parameters(), 1.0)
        opt.step()
    fns = {"engine": engine_step}
    torch = torch_or_none()
    if torch is not None:
        tdt = torch.float32 if dtype == np.float32 else torch.float64
        tm = torch_gpt(torch, V, T, L, H, D, activation=activation).to(tdt)
        tm.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in model.state_dict().items()})
        topt = torch.optim.AdamW(tm.parameters(), lr=1e-4)
        tx, ty = torch.from_numpy(x), torch.from_numpy(y.reshape(-1))

        def torch_step():
            topt.zero_grad()
            out = tm(tx)
            torch.nn.functional.cross_entropy(out.reshape(-1, V), ty).backward()
            torch.nn.utils.clip_grad_norm_(tm.parameters(), 1.0)
            topt.step()
        fns["PyTorch"] = torch_step
    return fns


def gpt_floor(L, D, H, T, B, dtype, seed=0):
    """The GPT step's products alone (module docstring), on random arrays of the step's shapes."""
    from bench_attention import sdpa_floor
    from layers.dense import Linear
    rng = np.random.default_rng(seed)
    N = B * T

    def rand(*shape):
        return rng.standard_normal(shape).astype(dtype)
    widths = [(D, 3 * D), (D, D), (D, 4 * D), (4 * D, D)]
    layers = [[(Linear(i, o, dtype=dtype, rng=seed), rand(N, i), rand(N, o)) for i, o in widths] for _ in range(L)]
    head = (Linear(D, V, bias=False, dtype=dtype, rng=seed), rand(N, D), rand(N, V))
    attention = sdpa_floor(rand(B, H, T, D // H), rand(B, H, T, D // H), rand(B, H, T, D // H),
                           rand(B, H, T, D // H), True)

    def floor():
        for block in layers:
            for lin, x, g in block:
                lin.forward(x)
                lin.backward(g)
            attention()
        lin, x, g = head
        lin.forward(x)
        lin.backward(g)
    return floor


def layer_fns(D, H, T, B, dtype, seed=0):
    from layers.transformer import TransformerEncoderLayer
    rng = np.random.default_rng(seed)
    layer = TransformerEncoderLayer(D, H, 4 * D, 0.0, "gelu", batch_first=True, norm_first=True, dtype=dtype, rng=seed)
    x = rng.standard_normal((B, T, D)).astype(dtype)
    dy = rng.standard_normal((B, T, D)).astype(dtype)

    def engine_step():
        layer.forward(x, is_causal=True)
        layer.backward(dy)
    fns = {"engine": engine_step}
    torch = torch_or_none()
    if torch is not None:
        tdt = torch.float32 if dtype == np.float32 else torch.float64
        tl = torch.nn.TransformerEncoderLayer(D, H, 4 * D, 0.0, activation="gelu", batch_first=True,
                                              norm_first=True).to(tdt)
        tl.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in layer.state_dict().items()})
        tx = torch.from_numpy(x).requires_grad_(True)
        tdy = torch.from_numpy(dy)
        mask = torch.triu(torch.ones(T, T, dtype=torch.bool), diagonal=1)

        def torch_step():
            tl(tx, src_mask=mask, is_causal=True).backward(tdy)
        fns["PyTorch"] = torch_step
    return fns


def run(quick=False):
    rows = []
    for k, (L, D, H, T, B, dtype, act) in enumerate(GPT_CASES):
        if quick:
            L, D, H, T, B = 1, 8, 2, 8, 2
        fns = gpt_fns(L, D, H, T, B, dtype, act)
        if k == 0:
            fns["floor"] = gpt_floor(L, D, H, T, B, dtype)
        res = interleaved(fns, repeats=3 if quick else 15, block=3)
        case = f"GPT step L{L} D{D} H{H} T{T} B{B} {act} (AdamW, clip), {np.dtype(dtype).name}"
        rows.append(row("transformer", case, res["engine"], "PyTorch", res.get("PyTorch")))
        if "floor" in res:
            rows.append(row("transformer", case + ": BLAS floor, its GEMMs alone", res["floor"], "PyTorch",
                            res.get("PyTorch")))
    for D, H, T, B, dtype in LAYER_CASES:
        if quick:
            D, H, T, B = 8, 2, 8, 2
        res = interleaved(layer_fns(D, H, T, B, dtype), repeats=3 if quick else 20)
        rows.append(row("transformer", f"TransformerEncoderLayer pre-LN causal D{D} H{H} T{T} B{B} fwd+bwd, "
                        f"{np.dtype(dtype).name}", res["engine"], "PyTorch", res.get("PyTorch")))
    return rows


if __name__ == "__main__":
    main(run)
