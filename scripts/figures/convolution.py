"""Convolution figures (notes 000 §6, Fig 6.1–6.5; 003 §2.1, Fig 2.7).

Every number comes from the engine's layers (layers/conv.py, layers/pooling.py): connectivity
diagrams are read off the dense matrix of an actual Conv1d (its responses to the unit vectors),
receptive fields off its backward pass, and the formulas they are checked against come from
analysis.theory (conv_output_size, receptive_field, mlp_vs_cnn_256, ...).
"""

import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from analysis import theory
from figures.registry import figure
from layers.activations import ReLU
from layers.conv import Conv1d, Conv2d
from layers.pooling import MaxPool2d


# ---------------------------------------------------------------------------------------------
# computing helpers
# ---------------------------------------------------------------------------------------------
def conv1d_with(w, b=0.0, stride=1, padding=0, dilation=1):
    """A single-channel Conv1d with kernel `w` (K,) and bias `b`."""
    w = np.asarray(w, np.float64)
    layer = Conv1d(1, 1, len(w), stride=stride, padding=padding, dilation=dilation)
    layer.weight.value[...] = w.reshape(1, 1, -1)
    layer.bias.value[...] = b
    return layer


def conv1d_matrix(layer, L):
    """Dense matrix M (L_out, L) of a single-channel Conv1d without its bias: column m is the
    layer's response to the unit vector e_m minus the bias, so conv(x) = M x + β."""
    E = np.eye(L).reshape(L, 1, L)
    Z = layer.forward(E, train=False)[:, 0, :]              # (L, L_out): row m = conv(e_m)
    return (Z - layer.bias.value[0]).T.copy()


def taps(L, K, stride, padding, dilation):
    """Input index i·s − p + j·d of tap j of output i (the output-size formula's geometry)."""
    L_out = theory.conv_output_size(L, K, stride, padding, dilation)
    return np.array([[i * stride - padding + j * dilation for j in range(K)] for i in range(L_out)])


# ---------------------------------------------------------------------------------------------
# drawing helpers
# ---------------------------------------------------------------------------------------------
#: colours of kernel taps w_1 … w_5 in the connectivity diagrams (palette colours; see tap_handles)
TAP_COLORS = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00"]


def tap_handles(K, padding=True, faint=False):
    """Legend handles: one line per kernel tap $w_j$ in its colour, the dashed zero-padding line
    and (faint=True) the faint lines of the outputs not highlighted."""
    from matplotlib.lines import Line2D
    hs = [Line2D([], [], color=TAP_COLORS[j], lw=1.6, label=f"tap $w_{j + 1}$") for j in range(K)]
    if padding:
        hs.append(Line2D([], [], color="0.6", lw=1, ls="--", label="to a zero pad"))
    if faint:
        hs.append(Line2D([], [], color="0.8", lw=0.8, label="other outputs"))
    return hs


def draw_connectivity(ax, M, L, K, stride, padding, dilation, y_in=0.0, y_out=1.0, color=None,
                      label_in="x", label_out="z", out_offset=0, draw_inputs=True, highlight=None):
    """Input nodes at x = 0..L−1, output i above the centre of its window; a line for every
    nonzero entry M[i, m] of the engine's matrix (coloured by tap j), dashed grey lines to the
    zero-padding positions the formula's taps reach outside the input. With `highlight` (output
    indices), only those outputs' lines are coloured; the others are thin and faint, so a
    diagram with many outputs does not become a web of crossing lines."""
    T = taps(L, K, stride, padding, dilation)
    L_out = M.shape[0]
    centres = T.mean(axis=1)
    used_pad = sorted({int(m) for m in T.ravel() if m < 0 or m >= L})
    for i in range(L_out):
        faint = highlight is not None and i not in highlight
        for j, m in enumerate(T[i]):
            if 0 <= m < L:
                if M[i, m] == 0:
                    continue
                ax.plot([m, centres[i]], [y_in, y_out], color="0.82" if faint else (color or TAP_COLORS[j]),
                        lw=0.8 if faint else 1.5, zorder=0 if faint else 1)
            else:
                ax.plot([m, centres[i]], [y_in, y_out], color="0.8" if faint else "0.55",
                        lw=0.8 if faint else 1, ls="--", zorder=0 if faint else 1)
    if draw_inputs:
        ax.scatter(np.arange(L), np.full(L, y_in), s=140, color="0.85", edgecolor="k", zorder=2)
        for m in range(L):
            ax.text(m, y_in, f"{m + 1}", ha="center", va="center", fontsize=7, zorder=3)
        if used_pad:
            ax.scatter(used_pad, np.full(len(used_pad), y_in), s=140, facecolor="white",
                       edgecolor="0.5", ls="--", zorder=2)
            for m in used_pad:
                ax.text(m, y_in, "0", ha="center", va="center", fontsize=7, color="0.5", zorder=3)
        ax.text(-padding - 1.2, y_in, label_in, ha="right", va="center", fontsize=10)
    ax.scatter(centres, np.full(L_out, y_out), s=140, color=color or "0.35", alpha=0.9, edgecolor="k", zorder=2)
    for i in range(L_out):
        ax.text(centres[i], y_out, f"{i + 1 + out_offset}", ha="center", va="center", fontsize=7,
                color="white", zorder=3)
    ax.text(-padding - 1.2, y_out, label_out, ha="right", va="center", fontsize=10)
    ax.set_xlim(min(-padding, 0) - 2.5, max(L + padding, L) + 0.5)
    ax.axis("off")


def draw_dense(ax, W, label_in="x", label_out="h", v=None):
    """Every output above its own position, a line to every input with a nonzero weight W[i, m],
    coloured on the diverging scale ±v (default: the largest |W|)."""
    L_out, L = W.shape
    v = v or np.abs(W).max()
    cmap = plt.get_cmap("RdBu_r")
    for i in range(L_out):
        for m in range(L):
            if W[i, m] != 0:
                ax.plot([m, i], [0, 1], color=cmap(0.5 + 0.5 * W[i, m] / v), lw=1.2, zorder=1)
    ax.scatter(np.arange(L), np.zeros(L), s=140, color="0.85", edgecolor="k", zorder=2)
    ax.scatter(np.arange(L_out), np.ones(L_out), s=140, color="0.35", edgecolor="k", zorder=2)
    for m in range(L):
        ax.text(m, 0, f"{m + 1}", ha="center", va="center", fontsize=7, zorder=3)
    for i in range(L_out):
        ax.text(i, 1, f"{i + 1}", ha="center", va="center", fontsize=7, color="white", zorder=3)
    ax.text(-1.2, 0, label_in, ha="right", va="center", fontsize=10)
    ax.text(-1.2, 1, label_out, ha="right", va="center", fontsize=10)
    ax.set_xlim(-2.5, max(L, L_out) + 0.5)
    ax.axis("off")


def show_matrix(ax, M, title, cmap="RdBu_r", annotate=True, v=None, fmt=".2g"):
    """M as an image on a diverging map centred at 0 (zeros blank), numbers in the cells: white
    on dark cells, black on light ones. Returns the image (for a colour bar)."""
    v = v or np.abs(M).max() or 1.0
    im = ax.imshow(np.where(M == 0, np.nan, M), cmap=cmap, vmin=-v, vmax=v)
    if annotate and M.size <= 100:
        for (i, j), val in np.ndenumerate(M):
            ax.text(j, i, "0" if val == 0 else format(val, fmt), ha="center", va="center", fontsize=8,
                    color="0.6" if val == 0 else ("w" if abs(val) > 0.55 * v else "k"))
    ax.set_xticks(range(M.shape[1]), [str(j + 1) for j in range(M.shape[1])], fontsize=7)
    ax.set_yticks(range(M.shape[0]), [str(i + 1) for i in range(M.shape[0])], fontsize=7)
    ax.set_xlabel("input $j$")
    ax.set_ylabel("output $i$")
    ax.set_title(title, fontsize=10)
    return im


# ---------------------------------------------------------------------------------------------
# 000 Fig 6.1: image kernels
# ---------------------------------------------------------------------------------------------
IMAGE_KERNELS = {
    "blur (Gaussian)": np.outer([1, 2, 1], [1, 2, 1]) / 16.0,
    "sharpen": np.array([[0, -1, 0], [-1, 5, -1], [0, -1, 0]], np.float64),
    "edges (Laplacian)": np.array([[-1, -1, -1], [-1, 8, -1], [-1, -1, -1]], np.float64),
    "vertical edges (Sobel x)": np.array([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]], np.float64),
    "horizontal edges (Sobel y)": np.array([[-1, -2, -1], [0, 0, 0], [1, 2, 1]], np.float64),
}


def test_image(n=64, seed=0):
    """A synthetic grey image (no downloads): a disc, a square, a bar, a soft gradient, noise."""
    yy, xx = np.mgrid[0:n, 0:n] / (n - 1)
    img = 0.25 * xx
    img = np.where((xx - 0.3) ** 2 + (yy - 0.32) ** 2 < 0.18 ** 2, 0.9, img)
    img = np.where((np.abs(xx - 0.72) < 0.14) & (np.abs(yy - 0.7) < 0.14), 0.55, img)
    img = np.where(np.abs((yy - 0.95) + 0.9 * (xx - 0.05)) < 0.04, 1.0, img)
    img = img + 0.04 * np.random.default_rng(seed).normal(size=img.shape)
    return img


@figure("image-kernels", source="000 Fig 6.1",
        caption="One Conv2d with {n_kernels} output channels, each a hand-set 3×3 image kernel, applied "
                "(zero padding 1) to a {size}×{size} synthetic image: blurring, sharpening and edge detection.")
def image_kernels(quick=False):
    n = 48 if quick else 64
    img = test_image(n)
    names = list(IMAGE_KERNELS)
    conv = Conv2d(1, len(names), 3, padding=1, bias=False)
    conv.weight.value[:, 0] = np.stack([IMAGE_KERNELS[k] for k in names])
    out = conv.forward(img.reshape(1, 1, n, n), train=False)[0]

    fig, axes = plt.subplots(2, len(names) + 1, figsize=(2.3 * (len(names) + 1), 5.0),
                             gridspec_kw={"height_ratios": [2.2, 1]})
    axes[0, 0].imshow(img, cmap="gray")
    axes[0, 0].set_title("input image", fontsize=9)
    axes[1, 0].axis("off")
    for c, name in enumerate(names):
        ax = axes[0, c + 1]
        o = out[c]
        if name.startswith("blur") or name.startswith("sharpen"):
            ax.imshow(o, cmap="gray", vmin=img.min(), vmax=img.max())
        else:
            ax.imshow(np.abs(o), cmap="gray")
        ax.set_title(name if name.startswith(("blur", "sharpen")) else f"|{name}|", fontsize=9)
        k = IMAGE_KERNELS[name]
        kax = axes[1, c + 1]
        v = np.abs(k).max()
        kax.imshow(k, cmap="RdBu_r", vmin=-v, vmax=v)
        for (i, j), val in np.ndenumerate(k):
            kax.text(j, i, f"{val:.3g}" if name.startswith("blur") else f"{val:g}", ha="center",
                     va="center", fontsize=8, color="white" if abs(val) > 0.6 * v else "k")
        kax.set_title("kernel", fontsize=8)
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle("Image kernels: each output pixel is the kernel-weighted sum of the 3×3 patch around it",
                 fontsize=11)
    fig.tight_layout()
    return fig, {"image": img, "kernel_names": names, "kernels": conv.weight.value[:, 0].copy(),
                 "outputs": out, "n_kernels": len(names), "size": n}


# ---------------------------------------------------------------------------------------------
# 000 Fig 6.2: kernel size 3, zero padding vs valid
# ---------------------------------------------------------------------------------------------
@figure("conv1d-padding", source="000 Fig 6.2",
        caption="1D convolution with kernel size 3, w = (0.25, 0.5, 0.25): with zero padding the {L} inputs give "
                "{L_same} outputs (the edge outputs see a padded 0); as a valid convolution only {L_valid}.")
def conv1d_padding(quick=False):
    L = 8
    w = np.array([0.25, 0.5, 0.25])
    x = np.array([1.0, 3.0, 2.0, 4.0, 1.5, 3.5, 0.5, 2.5])
    same, valid = conv1d_with(w, padding=1), conv1d_with(w, padding=0)
    z_same = same.forward(x.reshape(1, 1, L), train=False)[0, 0]
    z_valid = valid.forward(x.reshape(1, 1, L), train=False)[0, 0]
    M_same, M_valid = conv1d_matrix(same, L), conv1d_matrix(valid, L)

    fig = plt.figure(figsize=(6.5, 4.6), layout="constrained")
    gs = fig.add_gridspec(3, 2, width_ratios=[1.2, 1], height_ratios=[1, 1, 0.25])
    ax1, ax2, ax3 = fig.add_subplot(gs[0, 0]), fig.add_subplot(gs[1, 0]), fig.add_subplot(gs[:2, 1])
    draw_connectivity(ax1, M_same, L, 3, 1, 1, 1)
    ax1.set_title(f"Zero padding: {L} inputs → {len(z_same)} outputs", fontsize=9)
    draw_connectivity(ax2, M_valid, L, 3, 1, 0, 1)
    ax2.set_title(f"Valid: {L} inputs → {len(z_valid)} outputs", fontsize=9)
    pos = np.arange(L)
    ax3.plot(pos, x, "o-", color="0.5", label="input $x$")
    ax3.plot(pos, z_same, "s-", color="C0", label="$z$, zero padding")
    ax3.plot(pos[1:-1], z_valid, "^--", color="C1", ms=5, label="$z$, valid")
    ax3.set_xticks(pos, [str(p + 1) for p in pos])
    ax3.set_xlabel("position $i$")
    ax3.set_title("Values: the padded edges are pulled toward 0", fontsize=9)
    ax3.legend(loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2, frameon=False)
    key = fig.add_subplot(gs[2, 0])
    key.axis("off")
    key.legend(handles=tap_handles(3), loc="center", ncol=4, frameon=False,
               title=r"$z_i = w_1x_{i-1} + w_2x_i + w_3x_{i+1}$", handlelength=1.4,
               columnspacing=0.8)
    return fig, {"x": x, "w": w, "z_same": z_same, "z_valid": z_valid, "L": L,
                 "L_same": len(z_same), "L_valid": len(z_valid),
                 "L_same_formula": theory.conv_output_size(L, 3, 1, 1, 1),
                 "L_valid_formula": theory.conv_output_size(L, 3, 1, 0, 1),
                 "matrix_same": M_same, "matrix_valid": M_valid}


# ---------------------------------------------------------------------------------------------
# 000 Fig 6.3: stride, kernel size, dilation
# ---------------------------------------------------------------------------------------------
STRIDE_DILATION_CASES = [
    # title, K, stride, padding, dilation
    ("stride 2 (kernel 3)", 3, 2, 1, 1),
    ("kernel size 5", 5, 1, 2, 1),
    ("dilation 2 (kernel 3)", 3, 1, 2, 2),
]


@figure("conv-stride-dilation", source="000 Fig 6.3",
        caption="Connectivity of three Conv1d layers on {L} inputs, read off the engine's layers "
                "(two outputs' windows in colour, one colour per kernel tap; the other outputs' "
                "lines faint): stride 2 halves the outputs ({L_stride}), kernel size 5 widens each "
                "window, dilation 2 spreads 3 weights over 5 inputs. Output lengths "
                "⌊(n + 2p − d(k − 1) − 1)/s⌋ + 1.")
def conv_stride_dilation(quick=False):
    L = 11
    rng = np.random.default_rng(0)
    cases, lengths = [], []
    fig, axes = plt.subplots(len(STRIDE_DILATION_CASES), 1, figsize=(6.5, 5.6), layout="constrained")
    for ax, (title, K, s, p, d) in zip(axes, STRIDE_DILATION_CASES):
        layer = conv1d_with(np.arange(1.0, K + 1), stride=s, padding=p, dilation=d)
        M = conv1d_matrix(layer, L)
        n_out = layer.forward(rng.normal(size=(1, 1, L)), train=False).shape[-1]
        formula = theory.conv_output_size(L, K, s, p, d)
        draw_connectivity(ax, M, L, K, s, p, d, highlight={0, n_out // 2})
        ax.set_title(f"{title}, padding {p}: {L} inputs → {n_out} outputs "
                     f"(⌊({L} + {2 * p} − {d}·{K - 1} − 1)/{s}⌋ + 1 = {formula})", fontsize=9)
        cases.append({"title": title, "kernel_size": K, "stride": s, "padding": p, "dilation": d,
                      "matrix": M, "n_out": n_out, "formula": formula})
    # output lengths over a grid of geometries: engine vs formula
    for n in (5, 8, 13):
        for K in (1, 2, 3, 5):
            for s in (1, 2, 3):
                for p in (0, 1, 2):
                    for d in (1, 2, 3):
                        if n + 2 * p < d * (K - 1) + 1:
                            continue
                        layer = Conv1d(1, 1, K, stride=s, padding=p, dilation=d)
                        got = layer.forward(np.zeros((1, 1, n)), train=False).shape[-1]
                        lengths.append((n, K, s, p, d, got, theory.conv_output_size(n, K, s, p, d)))
    fig.legend(handles=tap_handles(5, faint=True), loc="outside lower center", ncol=4, frameon=False)
    return fig, {"L": L, "cases": cases, "L_stride": cases[0]["n_out"],
                 "lengths": np.array(lengths, dtype=np.int64)}


# ---------------------------------------------------------------------------------------------
# 000 Fig 6.4: fully connected vs convolutional
# ---------------------------------------------------------------------------------------------
@figure("fc-vs-conv-matrix", source="000 Fig 6.4",
        caption="A fully connected layer on {L} inputs has {n_fc} independent weights; the convolution "
                "(kernel 3, zero padding) is the same layer with the matrix constrained to a band of "
                "{n_tied} tied weights. The engine's Conv1d equals multiplication by that matrix "
                "(max difference {max_error:.1e}).")
def fc_vs_conv_matrix(quick=False):
    from layers.dense import Linear
    L = 6
    w = np.array([-0.8, 1.0, 0.5])
    conv = conv1d_with(w, b=0.1, padding=1)
    M = conv1d_matrix(conv, L)
    fc = Linear(L, L, rng=0)
    W = fc.weight.value.copy()
    x = np.random.default_rng(1).normal(size=(5, L))
    z_conv = conv.forward(x.reshape(5, 1, L), train=False)[:, 0, :]
    z_mat = x @ M.T + conv.bias.value[0]
    err = float(np.abs(z_conv - z_mat).max())

    fig, axes = plt.subplots(2, 2, figsize=(6.5, 5.6), gridspec_kw={"width_ratios": [1.3, 1]},
                             layout="constrained")
    v = max(np.abs(W).max(), np.abs(M).max())          # one colour scale for both matrices
    draw_dense(axes[0, 0], W, v=v)
    axes[0, 0].set_title(f"Fully connected: {L * L} weights", fontsize=9)
    show_matrix(axes[0, 1], W, r"Its matrix $\Omega$ (36 free values)", v=v, fmt=".1f")
    draw_connectivity(axes[1, 0], M, L, 3, 1, 1, 1)
    axes[1, 0].set_title("Convolutional: kernel 3, zero padding", fontsize=9)
    im = show_matrix(axes[1, 1], M, "Banded, tied $w_1, w_2, w_3$", v=v)
    fig.colorbar(im, ax=axes[:, 1], shrink=0.6, label="weight")
    axes[1, 0].legend(handles=tap_handles(3), loc="upper center", bbox_to_anchor=(0.5, 0.02),
                      ncol=4, frameon=False, handlelength=1.2, columnspacing=0.8)
    nz = M[M != 0]
    return fig, {"L": L, "w": w, "bias": float(conv.bias.value[0]), "conv_matrix": M, "fc_matrix": W,
                 "x": x, "z_conv": z_conv, "z_matrix": z_mat, "max_error": err,
                 "n_fc": int(W.size), "n_tied": int(len(np.unique(nz)))}


# ---------------------------------------------------------------------------------------------
# 000 Fig 6.5: two kernels -> two channels
# ---------------------------------------------------------------------------------------------
@figure("conv-channels", source="000 Fig 6.5",
        caption="Two kernels of size 3 with zero padding on 6 inputs: the first gives hidden units h₁…h₆, the "
                "second (different weights and bias) h₇…h₁₂, each through a ReLU.")
def conv_channels(quick=False):
    L = 6
    x = np.array([0.5, 2.0, 1.0, -1.0, 1.5, 0.0])
    W = np.array([[0.4, 0.6, 0.3], [-0.7, 0.2, 0.9]])
    b = np.array([-0.2, 0.3])
    conv = Conv1d(1, 2, 3, padding=1)
    conv.weight.value[:, 0, :] = W
    conv.bias.value[:] = b
    relu = ReLU()
    f = conv.forward(x.reshape(1, 1, L), train=False)
    h = relu.forward(f, train=False)[0]
    M = [conv1d_matrix(conv1d_with(W[c], padding=1), L) for c in range(2)]

    fig = plt.figure(figsize=(12, 5.2))
    gs = fig.add_gridspec(2, 2, width_ratios=[1.3, 1])
    cols = ("C0", "C3")
    for c in range(2):
        ax = fig.add_subplot(gs[c, 0])
        draw_connectivity(ax, M[c], L, 3, 1, 1, 1, color=cols[c], label_out="h", out_offset=c * L)
        ax.set_title(f"kernel {c + 1} (ω = [{', '.join(f'{v:g}' for v in W[c])}], β = {b[c]:g}) → "
                     f"feature map {c + 1}: h{'₁…h₆' if c == 0 else '₇…h₁₂'}", fontsize=10)
    ax2 = fig.add_subplot(gs[:, 1])
    pos = np.arange(L)
    ax2.bar(pos - 0.27, x, width=0.26, color="0.6", label="input x")
    for c in range(2):
        ax2.bar(pos + (c * 0.27), h[c], width=0.26, color=cols[c],
                label=f"channel {c + 1}: ReLU(β={b[c]:g} + [{', '.join(f'{v:g}' for v in W[c])}] ∗ x)")
    ax2.axhline(0, color="k", lw=0.6)
    ax2.set_xticks(pos, [str(p + 1) for p in pos])
    ax2.set_xlabel("position")
    ax2.legend(fontsize=8)
    ax2.set_title("values", fontsize=10)
    fig.tight_layout()
    return fig, {"x": x, "weights": W, "biases": b, "preactivations": f[0], "h": h,
                 "n_hidden": int(h.size)}


# ---------------------------------------------------------------------------------------------
# 000 §6.2: receptive fields
# ---------------------------------------------------------------------------------------------
RF_STACKS = {
    # name: (kernel sizes, strides, dilations) as functions of the depth l = 1..L
    "kernel 3": lambda l: (3, 1, 1),
    "kernel 3, stride 2": lambda l: (3, 2, 1),
    "kernel 3, dilation 2^(l−1)": lambda l: (3, 1, 2 ** (l - 1)),
}


def _math_label(name):
    """A stack's name for the figure, its power in mathtext."""
    return name.replace("2^(l−1)", "$2^{l-1}$")


def measured_receptive_field(ks, ss, ds, n):
    """Receptive field of the middle unit of the last layer of a stack of single-channel Conv1d
    layers (kernel sizes ks, strides ss, dilations ds, all weights 1, no bias), read off the
    engine's backward pass: the inputs with a nonzero ∂z/∂x. Returns (size, |∂z/∂x| over the n inputs)."""
    layers = [Conv1d(1, 1, k, stride=s, padding=d * (k - 1) // 2, dilation=d, bias=False)
              for k, s, d in zip(ks, ss, ds)]
    z = np.zeros((1, 1, n))
    for layer in layers:
        layer.weight.value[...] = 1.0
        z = layer.forward(z, train=False)
    dy = np.zeros_like(z)
    dy[0, 0, z.shape[-1] // 2] = 1.0
    for layer in reversed(layers):
        dy = layer.backward(dy)
    g = np.abs(dy[0, 0])
    nz = np.flatnonzero(g)
    return int(nz[-1] - nz[0] + 1), g


@figure("receptive-field", source="000 §6.2",
        caption="Receptive field of one unit after l stacked convolutions of kernel size 3, measured as the inputs "
                "with a nonzero gradient (engine backward): it grows by 2 per layer ({rf_plain_last} after {depth} "
                "layers), but doubles with stride 2 or dilation 2^(l−1) ({rf_dilated_last}).")
def receptive_field_fig(quick=False):
    depth = 5 if quick else 7
    n = 2 ** (depth + 2) + 1
    depths = np.arange(1, depth + 1)
    measured, formula, grads = {}, {}, {}
    for name, geom in RF_STACKS.items():
        measured[name], formula[name], grads[name] = [], [], []
        for L in depths:
            ks, ss, ds = zip(*(geom(l) for l in range(1, L + 1)))
            rf, g = measured_receptive_field(ks, ss, ds, n)
            measured[name].append(rf)
            formula[name].append(theory.receptive_field(ks, ss, ds))
            grads[name].append(g)

    fig = plt.figure(figsize=(12, 6.5))
    gs = fig.add_gridspec(2, 2, width_ratios=[1, 1.5])
    ax = fig.add_subplot(gs[:, 0])
    for c, name in enumerate(RF_STACKS):
        ax.plot(depths, formula[name], "-", color=f"C{c}", lw=2, alpha=0.5)
        ax.plot(depths, measured[name], "os^"[c], color=f"C{c}", ms=(6, 11, 6)[c],
                mfc="none" if c == 1 else f"C{c}", mew=1.5, label=f"{_math_label(name)}: measured")
    ax.plot([], [], "-", color="0.5", lw=2, alpha=0.5,
            label=r"formula $1 + \sum_l d_l (k_l - 1) \prod_{m<l} s_m$")
    ax.set_yscale("log", base=2)
    ax.set_xlabel("number of convolution layers l")
    ax.set_xticks(depths)
    ax.set_ylabel("receptive field (inputs)")
    ax.set_title("receptive field vs depth", fontsize=10)
    ax.legend(fontsize=8)
    for r, name in enumerate(("kernel 3", "kernel 3, dilation 2^(l−1)")):
        a = fig.add_subplot(gs[r, 1])
        G = np.array([g / g.max() for g in grads[name]])
        c = n // 2
        w = min(c, (depth + 3) if r == 0 else 2 ** depth + 4)
        im = a.imshow(G[:, c - w:c + w + 1], aspect="auto", cmap="Blues", interpolation="nearest",
                      extent=(-w - 0.5, w + 0.5, depth + 0.5, 0.5), vmin=0, vmax=1)
        fig.colorbar(im, ax=a, label="|∂z/∂x| / max")
        a.set_ylabel("layer l")
        a.set_title(f"{_math_label(name)}: gradient of the middle unit of layer l w.r.t. the input",
                    fontsize=10)
        a.set_xlabel("input position relative to the unit")
    fig.tight_layout()
    return fig, {"depths": depths, "measured": {k: np.array(v) for k, v in measured.items()},
                 "formula": {k: np.array(v) for k, v in formula.items()}, "depth": depth,
                 "rf_plain_last": measured["kernel 3"][-1],
                 "rf_dilated_last": measured["kernel 3, dilation 2^(l−1)"][-1]}


# ---------------------------------------------------------------------------------------------
# 000 §6.1: equivariance of convolution, partial invariance of pooling
# ---------------------------------------------------------------------------------------------
def shift_image(img, dy, dx):
    """Translate a zero-bordered image by (dy, dx) pixels (content must stay inside)."""
    out = np.zeros_like(img)
    H, W = img.shape[-2:]
    out[..., max(dy, 0):H + min(dy, 0), max(dx, 0):W + min(dx, 0)] = \
        img[..., max(-dy, 0):H - max(dy, 0), max(-dx, 0):W - max(dx, 0)]
    return out


@figure("equivariance", source="000 §6.1",
        caption="Shifting a digit by s pixels shifts the engine's Conv2d feature map by exactly s pixels "
                "(largest difference {max_equivariance_error:.1e}): convolution is equivariant, f[t[x]] = t[f[x]]. "
                "After 2×2 max pooling, a 1-pixel shift leaves {pool_unchanged_1:.0%} of the pooled values "
                "unchanged (the feature map: {conv_unchanged_1:.0%}); a global max pool is invariant.")
def equivariance(quick=False):
    from engine.data import load_digits
    X, y = load_digits(as_images=True)
    digit = X[list(y).index(3), 0]
    canvas = np.zeros((20, 20))
    canvas[6:14, 6:14] = digit
    conv = Conv2d(1, 1, 3, padding=1, bias=False)
    conv.weight.value[0, 0] = IMAGE_KERNELS["vertical edges (Sobel x)"]
    pool = MaxPool2d(2)
    shifts = np.arange(0, 5)
    x = canvas.reshape(1, 1, 20, 20)
    f0 = conv.forward(x, train=False)
    p0 = pool.forward(f0, train=False)
    g0 = f0.max()
    pool4 = MaxPool2d(4)
    p40, pool4_same = pool4.forward(f0, train=False), []
    eq_err, conv_same, pool_same, pool_shifted_err, global_err = [], [], [], [], []
    maps = {}
    for s in shifts:
        xs = shift_image(x, 0, int(s))
        fs = conv.forward(xs, train=False)
        ps = pool.forward(fs, train=False)
        eq_err.append(float(np.abs(fs - shift_image(f0, 0, int(s))).max()))
        conv_same.append(float(np.mean(np.isclose(fs, f0, rtol=0, atol=1e-12)[f0 != 0])))
        pool_same.append(float(np.mean(np.isclose(ps, p0, rtol=0, atol=1e-12)[p0 != 0])))
        if s % 2 == 0:
            pool_shifted_err.append(float(np.abs(ps - shift_image(p0, 0, int(s) // 2)).max()))
        global_err.append(float(abs(fs.max() - g0)))
        p4s = pool4.forward(fs, train=False)
        pool4_same.append(float(np.mean(np.isclose(p4s, p40, rtol=0, atol=1e-12)[p40 != 0])))
        maps[int(s)] = (xs[0, 0], fs[0, 0], ps[0, 0])

    fig = plt.figure(figsize=(6.5, 7.0))
    gs = fig.add_gridspec(4, 4, height_ratios=[1, 1, 1, 1.7])
    v = np.abs(f0).max()
    for r, s in enumerate((0, 1, 2)):
        xs, fs, ps = maps[s]
        a = fig.add_subplot(gs[r, 0]); a.imshow(xs, cmap="gray_r"); a.set_ylabel(f"shift {s}")
        a.axvline(9.5, color="C1", lw=0.8)
        if r == 0: a.set_title("input t[x]", fontsize=9)
        a = fig.add_subplot(gs[r, 1]); a.imshow(fs, cmap="RdBu_r", vmin=-v, vmax=v)
        a.axvline(9.5, color="C1", lw=0.8)
        if r == 0: a.set_title("conv f[t[x]]", fontsize=9)
        a = fig.add_subplot(gs[r, 2])
        diff = np.abs(fs - shift_image(f0[0, 0], 0, s))
        a.imshow(diff, cmap="gray_r", vmin=0, vmax=v)
        a.text(9.5, 9.5, f"max = {diff.max():.3g}", ha="center", va="center", fontsize=9)
        if r == 0: a.set_title("|f[t[x]] − t[f[x]]|", fontsize=9)
        a = fig.add_subplot(gs[r, 3]); a.imshow(ps, cmap="RdBu_r", vmin=-v, vmax=v)
        if r == 0: a.set_title("2×2 max pool", fontsize=9)
    for a in fig.axes:
        a.set_xticks([]); a.set_yticks([])
    ax = fig.add_subplot(gs[3, :2])
    ax.plot(shifts, conv_same, "o-", label="conv feature map (not invariant)")
    ax.plot(shifts, pool_same, "s-", label="after 2×2 max pool (partly invariant)")
    ax.plot(shifts, pool4_same, "d-", label="after 4×4 max pool")
    ax.plot(shifts, [float(e < 1e-12) for e in global_err], "^-", label="global max pool (invariant)")
    ax.plot(shifts, [float(e == 0) for e in eq_err], "k:", label="conv, shifted back (equivariant)")
    ax.set_xlabel("horizontal shift s (pixels)")
    ax.set_ylabel("fraction of nonzero\noutputs unchanged")
    ax.set_ylim(-0.05, 1.1)
    ax.legend(loc="center left", bbox_to_anchor=(1.04, 0.5))
    ax.set_title("invariance to shifts", fontsize=10)
    return fig, {"shifts": shifts, "equivariance_errors": np.array(eq_err),
                 "max_equivariance_error": max(eq_err), "conv_unchanged": np.array(conv_same),
                 "pool_unchanged": np.array(pool_same), "pool4_unchanged": np.array(pool4_same),
                 "pool_even_shift_errors": np.array(pool_shifted_err),
                 "global_max_errors": np.array(global_err),
                 "conv_unchanged_1": conv_same[1], "pool_unchanged_1": pool_same[1]}


# ---------------------------------------------------------------------------------------------
# 003 Fig 2.7: learned first-layer filters
# ---------------------------------------------------------------------------------------------
def digits_cnn(n_filters=8, seed=0, width2=16):
    """conv 5×5 (n_filters) → ReLU → 2×2 max pool → conv 3×3 (width2) → ReLU → 2×2 max pool →
    flatten → linear → 10, for the 8×8 digits."""
    from engine.core import Sequential
    from layers.dense import Linear
    from layers.pooling import Flatten
    return Sequential(Conv2d(1, n_filters, 5, padding=2, rng=seed), ReLU(), MaxPool2d(2),
                      Conv2d(n_filters, width2, 3, padding=1, rng=seed + 1), ReLU(), MaxPool2d(2),
                      Flatten(), Linear(width2 * 2 * 2, 10, rng=seed + 2))


#: the training setting of learned-filters: inputs centred (the training set's mean image
#: subtracted, so a filter gains nothing from a positive blob and learns where ink changes),
#: an L2 penalty (Adam's weight_decay) that wears away weights the loss does not need, and a
#: small start for the first layer so what is shown was learned, not drawn at random
FILTER_TRAINING = dict(lr=3e-3, weight_decay=1e-2, init_scale=0.05, batch_size=32)


def train_digits_cnn(epochs, seed=0, lr=3e-3, weight_decay=1e-2, init_scale=0.05, batch_size=32):
    """Train digits_cnn on the centred engine.data.digits_split(as_images=True) with Adam;
    returns (model, initial first-layer weights, history, test accuracy,
    (centred test images, test labels, the mean image subtracted))."""
    from engine.losses import CrossEntropyLoss
    from engine.optim import Adam
    from engine.train import accuracy, fit, predict
    from engine.data import digits_split
    (Xtr, ytr), (Xte, yte) = digits_split(as_images=True)
    mean = Xtr.mean(axis=0)
    Xtr, Xte = Xtr - mean, Xte - mean
    model = digits_cnn(seed=seed)
    model[0].weight.value *= init_scale
    model[0].bias.value[...] = 0.0          # (a negative start bias would leave some filters dead)
    w0 = model[0].weight.value.copy()
    hist = fit(model, CrossEntropyLoss(), Adam(model.parameters(), lr=lr, weight_decay=weight_decay),
               Xtr, ytr, epochs=epochs, batch_size=batch_size, validation_data=(Xte, yte),
               metrics=("accuracy",), seed=seed, progress=False)
    acc = accuracy(predict(model, Xte), yte)
    return model, w0, hist, acc, (Xte, yte, mean)


def neighbour_correlation(W):
    """Correlation of horizontally and vertically adjacent weights over a stack of filters
    (K, k, k): about 0 for independent random weights, near 1 for smooth strokes and edges."""
    a = np.concatenate([W[:, :, :-1].ravel(), W[:, :-1, :].ravel()])
    b = np.concatenate([W[:, :, 1:].ravel(), W[:, 1:, :].ravel()])
    return float(np.corrcoef(a, b)[0, 1])


def _image_row(fig, cells, images, cmap, vmin, vmax, label=None, marks=()):
    """One row of small images on one colour scale; returns the last image (for a colour bar)."""
    im = None
    for i, (cell, w) in enumerate(zip(cells, images)):
        a = fig.add_subplot(cell)
        im = a.imshow(w, cmap=cmap, vmin=vmin, vmax=vmax)
        a.set_xticks([])
        a.set_yticks([])
        if i == 0 and label:
            a.set_ylabel(label, rotation=0, ha="right", va="center")
        if i in marks:
            a.text(0.5, 0.5, "dead", transform=a.transAxes, ha="center", va="center", color="w",
                   fontsize=8, fontweight="bold")
        else:
            a.set_title(f"{i + 1}", fontsize=8, pad=2)
    return im


@figure("learned-filters", source="003 Fig 2.7",
        caption="The {n_filters} first-layer 5×5 filters of a small CNN (two conv layers) before "
                "and after {epochs} epochs of Adam on the 8×8 digits (inputs centred, L2 weight "
                "decay {weight_decay:g}), each row on one colour scale (red positive, blue "
                "negative), and the feature maps ReLU(conv) of one test digit. Training turns "
                "independent random weights (correlation of neighbouring weights "
                "{corr_initial:.2f}) into strokes and edges (correlation {corr_learned:.2f}): "
                "bars of one sign beside bars of the other. {dead_note} Test accuracy "
                "{test_accuracy:.1%}.")
def learned_filters(quick=False):
    epochs = 3 if quick else 12
    model, w0, hist, acc, (Xte, yte, mean) = train_digits_cnn(epochs, **FILTER_TRAINING)
    W = model[0].weight.value[:, 0].copy()
    K = len(W)
    x = Xte[:1]
    fmap = model[1].forward(model[0].forward(x, train=False), train=False)[0]
    every = model[1].forward(model[0].forward(Xte, train=False), train=False)
    dead = np.nonzero(every.max(axis=(0, 2, 3)) <= 0)[0]
    zero_maps = np.nonzero(fmap.max(axis=(1, 2)) <= 0)[0]
    if len(zero_maps) == 0:
        note = ("No map is blank and no filter is dead: a filter whose response is negative "
                "on every input (a dead unit, e.g. after a large negative bias) would give an "
                "all-zero map, since ReLU cuts it off; the first layer's biases start at 0.")
    else:
        note = (f"{len(zero_maps)} map(s) are blank (marked): the filter's response is negative "
                f"everywhere on this digit and ReLU cuts it off; {len(dead)} filter(s) are dead "
                "on every test digit.")

    fig = plt.figure(figsize=(6.5, 3.3), layout="constrained")
    gs = fig.add_gridspec(3, K + 2, width_ratios=[1.3] + [1] * K + [0.18])

    def bar(im, row, v, symmetric=True):
        cb = fig.colorbar(im, cax=fig.add_subplot(gs[row, K + 1]))
        ticks = [-v, 0, v] if symmetric else [0, v]
        cb.set_ticks(ticks)
        cb.set_ticklabels([f"{t:.2g}" for t in ticks])

    v0 = float(np.abs(w0[:, 0]).max())
    bar(_image_row(fig, [gs[0, 1 + i] for i in range(K)], w0[:, 0], "RdBu_r", -v0, v0,
                   "initial\nfilters"), 0, v0)
    v1 = float(np.abs(W).max())
    bar(_image_row(fig, [gs[1, 1 + i] for i in range(K)], W, "RdBu_r", -v1, v1,
                   "learned\nfilters"), 1, v1)
    v2 = float(fmap.max())
    bar(_image_row(fig, [gs[2, 1 + i] for i in range(K)], fmap, "Greys", 0, v2,
                   marks=set(zero_maps.tolist())), 2, v2, symmetric=False)
    a = fig.add_subplot(gs[2, 0])
    a.imshow((x + mean)[0, 0], cmap="Greys")
    a.set_xticks([])
    a.set_yticks([])
    a.set_title(f"test digit {yte[0]}", fontsize=8, pad=2)
    a.set_xlabel("its feature maps →", fontsize=8)
    return fig, {"epochs": epochs, "test_accuracy": acc, "filters": W, "initial_filters": w0[:, 0],
                 "feature_maps": fmap, "history": hist.history, "n_filters": K,
                 "weight_decay": FILTER_TRAINING["weight_decay"],
                 "corr_initial": neighbour_correlation(w0[:, 0]), "corr_learned": neighbour_correlation(W),
                 "dead_units": dead, "n_dead": int(len(dead)), "zero_maps": zero_maps,
                 "n_zero_maps": int(len(zero_maps)), "dead_note": note}


# ---------------------------------------------------------------------------------------------
# 003 §2.1: parameter counts, MLP vs CNN
# ---------------------------------------------------------------------------------------------
def engine_param_count(layer):
    return int(sum(p.value.size for p in layer.parameters()))


@figure("param-counts", source="003 §2.1 eq. 2.1–2.2",
        caption="Parameters for n×n×3 images: an MLP with two hidden layers as wide as the input has 2D² + 2D "
                "(D = 3n²; {mlp_rgb:,} ≈ 77B at n = 256, the notes' eq. 2.1; {mlp_grey:,} ≈ 8.6B in grey), while "
                "two 3×3 convolutions keeping 3 channels have {cnn_rgb} whatever the image size.")
def param_counts(quick=False):
    from layers.mlp import MLP
    rgb, grey = theory.mlp_vs_cnn_256(3), theory.mlp_vs_cnn_256(1)
    sides = 2 ** np.arange(2, 9)
    mlp_counts = np.array([theory.mlp_param_count([3 * n * n] * 3) for n in sides], dtype=np.int64)
    cnn_counts = np.array([2 * theory.conv2d_param_count(3, 3, 3)] * len(sides), dtype=np.int64)
    cnn64_counts = np.array([theory.conv2d_param_count(3, 64, 3) + theory.conv2d_param_count(64, 64, 3)]
                            * len(sides), dtype=np.int64)
    # the formulas against the engine's own layers, where they fit in memory
    engine_checks = []
    for n in (4, 8, 16):
        D = 3 * n * n
        mlp = MLP([D, D, D], activation="relu")
        engine_checks.append(("mlp", n, engine_param_count(mlp), theory.mlp_param_count([D, D, D])))
    for cin, cout in ((3, 3), (3, 64), (64, 64)):
        engine_checks.append(("conv3x3", (cin, cout), engine_param_count(Conv2d(cin, cout, 3)),
                              theory.conv2d_param_count(cin, cout, 3)))

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.8), gridspec_kw={"width_ratios": [1.4, 1]})
    ax = axes[0]
    ax.plot(sides, mlp_counts, "o-", label="MLP, 2 hidden layers of width D = 3n²")
    ax.plot(sides, cnn64_counts, "s-", label="CNN, 3×3 convs 3→64→64")
    ax.plot(sides, cnn_counts, "^-", label="CNN, 3×3 convs 3→3→3")
    ax.set_xscale("log", base=2); ax.set_yscale("log")
    ax.set_xticks(sides, [f"{n}" for n in sides])
    ax.set_xlabel("image side n (n×n×3 input)")
    ax.set_ylabel("parameters (hidden layers)")
    ax.annotate(f"{rgb['mlp_hidden']:,}\n(77B, eq. 2.1)", (256, rgb["mlp_hidden"]), textcoords="offset points",
                xytext=(-45, -110), fontsize=9, arrowprops={"arrowstyle": "->"})
    ax.legend(fontsize=9, loc="upper left")
    ax.set_title("parameter count vs image size", fontsize=10)
    ax = axes[1]
    labels = ["MLP RGB", "MLP grey", "CNN 3→64→64", "CNN 3→3→3"]
    vals = [rgb["mlp_hidden"], grey["mlp_hidden"], cnn64_counts[-1], rgb["cnn"]]
    ax.barh(labels, vals, color=["C0", "C0", "C1", "C2"])
    ax.set_xscale("log")
    for i, v in enumerate(vals):
        ax.text(v, i, f" {v:,}", va="center", fontsize=8)
    ax.set_xlim(1, 1e14)
    ax.set_title("256×256 images", fontsize=10)
    fig.tight_layout()
    return fig, {"sides": sides, "mlp_counts": mlp_counts, "cnn_counts": cnn_counts, "cnn64_counts": cnn64_counts,
                 "mlp_rgb": rgb["mlp_hidden"], "mlp_grey": grey["mlp_hidden"], "cnn_rgb": rgb["cnn"],
                 "mlp_rgb_with_output": rgb["mlp_with_output"], "engine_checks": engine_checks}
