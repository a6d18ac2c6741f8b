"""Word vectors (004 §4.4, 000 §8) and the hierarchical softmax (004 §4.5.1).

word-vectors: CBOW trained on the bundled corpus's words through `engine.fit` with a Huffman
hierarchical softmax (scripts/train_word_vectors.py), then the nearest neighbours (cosine,
analysis.embeddings) of a few frequent words and a t-SNE map (analysis.tsne) of the most
frequent ones. Check: the validation loss −log p(w | context) is below the unigram baseline's.

hierarchical-softmax: the cost per example, counted as vertex evaluations (inner products
w_vᵀh), against the vocabulary size for the plain softmax (V), a balanced tree and a Huffman tree
built from the corpus's word frequencies (their expected path lengths), and the Huffman tree of
the twelve most frequent words with one word's path. Checks: the Huffman expected depth is at
most the balanced one at every size; the leaf probabilities of a HierarchicalSoftmax over the
whole vocabulary sum to 1.
"""
import math

import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from analysis.tsne import TSNE
from engine.data.text import word_corpus
from figures.registry import figure
from figures.style import OKABE_ITO, place_labels
from layers.wordvec import HierarchicalSoftmax, build_tree

#: frequency ranks of the words in the small Huffman tree of hierarchical-softmax
RANKS = (1, 2, 3, 5, 8, 13, 21, 40, 80, 160, 320, 640)
QUERY = ("lord", "father", "come", "good", "night", "love", "king", "man", "sir")

#: the training run behind word-vectors: whole corpus (figure) and a short one (quick, tests)
RUNS = {False: dict(dim=32, window=2, epochs=1, batch_size=512, lr=0.02, min_count=5),
        True: dict(dim=16, window=2, epochs=1, batch_size=128, lr=0.03, min_count=50, max_words=100_000)}


@figure("word-vectors", source="004 §4.4, 000 §8",
        caption="CBOW word vectors (sum of the 2W = {context} context embeddings, Z = {dim}) trained on "
                "the corpus's words with a Huffman hierarchical softmax: {epochs} epoch over {n_train} "
                "windows, {seconds:.1f} s of training on 2 cores (Adam, batch {batch_size}). Validation loss "
                "−log p(w | context) = {val_loss:.3f} nats per word, below the unigram baseline's "
                "{unigram_val:.3f} (vocabulary of {V} words). Top: the nearest neighbours by cosine similarity; "
                "bottom: t-SNE of the {n_map} most frequent words' vectors, where words used alike "
                "(pronouns, auxiliaries, titles) gather.")
def word_vectors(quick=False):
    from train_word_vectors import neighbours, train
    run = RUNS[bool(quick)]
    r = train(head="hs", tree="huffman", **run)
    vocab = r.vocab
    nb = neighbours(r, [w for w in QUERY if w in vocab][:6], k=5)
    n_map = 60 if quick else 100
    ids = np.arange(1, n_map + 1)                          # the most frequent words ("<unk>" is id 0)
    tsne = TSNE(perplexity=10.0 if quick else 15.0, max_iter=300 if quick else 1000, init="pca", random_state=0,
                progress=False)
    Y = tsne.fit_transform(r.embeddings[ids])

    fig = plt.figure(figsize=(6.5, 8.2))             # the map as tall as the page allows: room for its labels
    gs = fig.add_gridspec(2, 1, height_ratios=[0.75, 4.2])
    ax0 = fig.add_subplot(gs[0])
    ax0.axis("off")
    lines = [f"{w}:  " + ",  ".join(f"{n} ({s:.2f})" for n, s in row) for w, row in nb.items()]
    ax0.text(0.0, 1.0, "\n".join(lines), va="top", ha="left", fontsize=8.5, linespacing=1.5,
             transform=ax0.transAxes)
    ax0.set_title("Nearest neighbours by cosine similarity", loc="left")
    ax1 = fig.add_subplot(gs[1])
    ax1.scatter(Y[:, 0], Y[:, 1], s=6, color=OKABE_ITO["blue"], linewidths=0)
    ax1.set_xticks([])
    ax1.set_yticks([])
    for side in ("left", "bottom"):
        ax1.spines[side].set_visible(False)
    ax1.set_aspect("equal", adjustable="datalim")
    ax1.set_title(f"t-SNE of the {n_map} most frequent words (validation loss {r.val_nll:.2f} vs "
                  f"unigram {r.unigram_val:.2f} nats)", loc="left")
    fig.tight_layout()
    place_labels(ax1, Y, [vocab.itos[i] for i in ids], fontsize=8, color=OKABE_ITO["black"])
    data = {"val_loss": r.val_nll, "fit_val_loss": r.val_loss, "unigram_val": r.unigram_val,
            "unigram_entropy": r.unigram_entropy, "below_unigram": bool(r.val_nll < r.unigram_val),
            "seconds": r.seconds, "epochs": r.epochs, "n_train": r.n_train, "V": len(vocab),
            "dim": run["dim"], "context": 2 * run["window"], "batch_size": run["batch_size"], "n_map": n_map,
            "neighbours": nb, "map": Y, "map_words": [vocab.itos[i] for i in ids],
            "embeddings": r.embeddings, "history": r.history}
    return fig, data


def _tree_layout(tree):
    """(x, depth) of every vertex and leaf: leaves in left-to-right order at x = 0, 1, …, each
    vertex above the middle of its children."""
    xs_v, xs_leaf = {}, {}
    nxt = [0]

    def walk(v, d):
        cx = []
        for c in tree.children[v]:
            if c >= 0:
                cx.append(walk(c, d + 1))
            else:
                xs_leaf[-1 - c] = (nxt[0], d + 1)
                cx.append(nxt[0])
                nxt[0] += 1
        xs_v[v] = (sum(cx) / 2.0, d)
        return xs_v[v][0]
    walk(0, 0)
    return xs_v, xs_leaf


@figure("hierarchical-softmax", source="004 §4.5.1",
        caption="Left: inner products w·h per training example for the plain softmax (V) and for a hierarchical "
                "softmax, whose cost is the path length to the target word: a balanced tree needs about log₂ V, "
                "a Huffman tree built from the corpus's word frequencies fewer on average (at V = {V_max}: "
                "{balanced_max:.2f} balanced, {huffman_max:.2f} Huffman, against {V_max} for the softmax). "
                "Right: the Huffman tree of twelve words of frequency ranks 1 to {max_rank} (their counts in the corpus); "
                "frequent words sit near the root, rare ones deep, and "
                "“{word}” is reached by {word_depth} binary decisions, p(w | h) = Π σ(±η) along its path. The "
                "leaf probabilities of a hierarchical softmax over all {V_max} words sum to 1 "
                "(largest error {sum_error:.1e}).")
def hierarchical_softmax(quick=False):
    vocab, train_ids, _ = word_corpus(min_count=5)
    counts_all = np.bincount(train_ids, minlength=len(vocab)).astype(np.float64)
    V_max = len(vocab)
    sizes = [4, 16, 64, 256, 1024, V_max] if quick else [2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, V_max]
    order = np.argsort(-counts_all, kind="stable")
    balanced, huffman = [], []
    for V in sizes:
        c = counts_all[order[:V]]
        balanced.append(build_tree("balanced", V).expected_depth(c))
        huffman.append(build_tree("huffman", V, c).expected_depth(c))
    balanced, huffman = np.array(balanced), np.array(huffman)

    # leaf probabilities over the whole vocabulary, random vertex vectors (any weights sum to 1)
    rng = np.random.default_rng(0)
    sum_error = 0.0
    for kind in ("huffman", "balanced"):
        hs = HierarchicalSoftmax(16, V_max, tree=kind, counts=counts_all)
        hs.weight.value[...] = rng.standard_normal(hs.weight.shape)
        hs.bias.value[...] = rng.standard_normal(hs.bias.shape)
        p = np.exp(hs.log_prob(rng.standard_normal((4 if quick else 32, 16))))
        sum_error = max(sum_error, float(np.abs(p.sum(axis=1) - 1.0).max()))

    # the small tree: twelve words of very different frequencies (ranks 1, 2, 3, 5, 8, … among
    # the words, "<unk>" left out)
    ranked = [i for i in order if vocab.itos[i] != "<unk>"]
    words_ids = [ranked[r - 1] for r in RANKS]
    small_counts = counts_all[words_ids]
    tree = build_tree("huffman", 12, small_counts)
    y = RANKS.index(160)                                    # a word of middling frequency
    word = vocab.itos[words_ids[y]]

    fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(6.5, 3.1), gridspec_kw={"width_ratios": [1.0, 1.25]})
    Vs = np.array(sizes)
    ax0.loglog(Vs, Vs, "o-", color=OKABE_ITO["grey"], label="plain softmax: V", base=2)
    ax0.loglog(Vs, balanced, "s-", color=OKABE_ITO["blue"], label="balanced tree", base=2)
    ax0.loglog(Vs, huffman, "^-", color=OKABE_ITO["vermillion"], label="Huffman tree", base=2)
    ax0.loglog(Vs, np.log2(Vs), "--", color=OKABE_ITO["black"], lw=0.8, label=r"$\log_2 V$", base=2)
    ax0.set_xlabel("vocabulary size V (most frequent words)")
    ax0.set_ylabel("inner products per example")
    ax0.set_title("Cost per example")
    ax0.legend(loc="upper left")

    xv, xl = _tree_layout(tree)
    path = set(tree.paths[y, :tree.depths[y]].tolist())
    on_path_edges = set()
    for v in path:
        for bit, c in enumerate(tree.children[v]):
            if (c >= 0 and c in path) or c == -1 - y:
                on_path_edges.add((v, bit))
    for v, (x, d) in xv.items():
        for bit, c in enumerate(tree.children[v]):
            cx, cd = xv[c] if c >= 0 else xl[-1 - c]
            hot = (v, bit) in on_path_edges
            ax1.plot([x, cx], [-d, -cd], color=OKABE_ITO["vermillion"] if hot else OKABE_ITO["grey"],
                     lw=2.0 if hot else 0.8, zorder=1)
            if hot:
                ax1.text((x + cx) / 2, -(d + cd) / 2, str(bit), fontsize=8, color=OKABE_ITO["vermillion"],
                         ha="right" if bit == 0 else "left", va="bottom")
        ax1.scatter([x], [-d], s=14, color=OKABE_ITO["vermillion"] if v in path else OKABE_ITO["black"], zorder=2)
    for leaf, (x, d) in xl.items():
        hot = leaf == y
        ax1.scatter([x], [-d], s=10, marker="s", color=OKABE_ITO["vermillion"] if hot else OKABE_ITO["blue"],
                    zorder=2)
        ax1.text(x, -d - 0.3, f"{vocab.itos[words_ids[leaf]]} ({int(small_counts[leaf])})", fontsize=8, rotation=90, ha="center", va="top",
                 color=OKABE_ITO["vermillion"] if hot else OKABE_ITO["black"],
                 weight="bold" if hot else "normal")
    ax1.set_ylim(-tree.depths.max() - 3.2, 0.5)
    ax1.set_xlim(-0.7, 11.7)
    ax1.axis("off")
    ax1.set_title(f"Huffman tree of 12 words: the path to “{word}”")
    ax1.text(0.0, 0.98, "word (count)", transform=ax1.transAxes, fontsize=8, color=OKABE_ITO["grey"], va="top")
    fig.tight_layout()
    data = {"sizes": Vs, "flat": Vs.astype(float), "balanced": balanced, "huffman": huffman,
            "huffman_le_balanced": bool(np.all(huffman <= balanced + 1e-12)), "sum_error": sum_error,
            "V_max": V_max, "balanced_max": float(balanced[-1]), "huffman_max": float(huffman[-1]),
            "word": word, "max_rank": RANKS[-1], "words": [vocab.itos[i] for i in words_ids], "word_depth": int(tree.depths[y]), "small_tree_depths": tree.depths,
            "small_counts": small_counts,
            "small_expected_depth": tree.expected_depth(small_counts),
            "small_balanced_depth": build_tree("balanced", 12).expected_depth(small_counts),
            "log2_bound": bool(np.all(balanced <= np.ceil(np.log2(Vs)) + 1e-12))}
    return fig, data
