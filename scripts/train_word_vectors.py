"""Word vectors on the bundled corpus: CBOW (004 §4.4) with a hierarchical softmax (Huffman tree,
004 §4.5.1), negative sampling (§4.5.2) or the plain softmax, trained through `engine.fit`.

    python scripts/train_word_vectors.py                       # Huffman HS, 8-45 s on a loaded 2-core VM
    python scripts/train_word_vectors.py --head ns --k 5       # negative sampling
    python scripts/train_word_vectors.py --head softmax        # plain softmax (Linear + CrossEntropyLoss)
    python scripts/train_word_vectors.py --tree balanced
    python scripts/train_word_vectors.py --full                # larger: 100-d vectors, 3 epochs

Measured 2026-12-06 (2-vCPU Xeon VM under load ~14, one Numba thread; validation −log p(w | context)
against the unigram baseline's 5.830 nats): default (Huffman, D 32, 1 epoch) 5.408 in 8 s; balanced
tree 5.425 in 8 s; plain softmax 5.363 in 188 s; --full 5.304 in 130 s (per epoch 5.420, 5.327,
5.304). With D 100, 5 epochs at lr 0.01 the vectors overfit (6.49: worse than the unigram).

Data: the corpus's lower-case words (engine.data.text.word_corpus: vocabulary from the first
90 % of the text, words seen fewer than 5 times as "<unk>"), every window of 2W + 1 words
giving the context ids X (N, 2W) and the centre id y (N,). Reported: the validation loss in
nats per word, which for the hierarchical and plain softmax is −log p(w | context) and is
compared with the unigram baseline (the training words' frequencies, whose cross-entropy on the
validation words is what a model that ignores the context reaches); for negative sampling the
sampled objective, and the cross-entropy of the plain softmax over its output vectors (not what
it optimises). Then the nearest neighbours (cosine) of a few frequent words.
"""
import argparse
import os
import sys
import time
from dataclasses import dataclass, field

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from analysis.embeddings import nearest_neighbors  # noqa: E402
from engine import fit, no_grad  # noqa: E402
from engine.core import Sequential  # noqa: E402
from engine.data.text import word_corpus  # noqa: E402
from engine.losses import CrossEntropyLoss  # noqa: E402
from engine.optim import Adam  # noqa: E402
from layers.dense import Linear  # noqa: E402
from layers.wordvec import CBOW, HeadLoss, HierarchicalSoftmax, NegativeSampling, WordVectors  # noqa: E402

QUERY_WORDS = ("king", "lord", "love", "good", "man", "night", "father", "come", "death", "thou")


def cbow_windows(ids, W):
    """Every window of 2W + 1 consecutive ids: contexts (n − 2W, 2W) (the W ids before and the W
    after the centre, in order) and centres (n − 2W,)."""
    n = len(ids)
    if n < 2 * W + 1:
        raise ValueError(f"ids: expected at least {2 * W + 1} words for windows of W = {W}, got {n}")
    cols = [ids[j:n - 2 * W + j] for j in range(2 * W + 1) if j != W]
    return np.stack(cols, axis=1), ids[W:n - W].copy()


def unigram_baseline(train_ids, valid_ids, V):
    """(entropy of the training unigram distribution, its cross-entropy on the validation words),
    in nats. The distribution is the training words' frequencies with one added to every count
    (Laplace), so that a word absent from a shortened training text (--max-words) still has a
    probability; on the whole corpus every vocabulary word occurs ≥ 5 times and the add-one
    changes the cross-entropy by < 0.01 nats."""
    counts = np.bincount(train_ids, minlength=V) + 1.0
    p = counts / counts.sum()
    entropy = float(-(p * np.log(p)).sum())
    return entropy, float(-np.log(p[valid_ids]).mean())


@dataclass
class Result:
    head: str
    vocab: object
    embeddings: np.ndarray            # the trained word vectors, cbow.weight (V, D)
    val_loss: float                   # fit's validation loss after the last epoch
    val_nll: float                    # −log p(w | context) per word (HS, softmax; NS: its output softmax)
    unigram_entropy: float
    unigram_val: float
    seconds: float
    epochs: int
    n_train: int
    counts: np.ndarray
    history: dict = field(default_factory=dict)
    model: object = None


def train(head="hs", tree="huffman", dim=32, window=2, epochs=1, batch_size=256, lr=0.01, k=5,
          max_words=None, min_count=5, seed=0, progress=False):
    """Train CBOW word vectors on the corpus (module docstring); returns a Result."""
    vocab, train_ids, valid_ids = word_corpus(min_count=min_count)
    if max_words is not None:
        train_ids = train_ids[:max_words]
        valid_ids = valid_ids[:max(max_words // 9, 2 * window + 1)]
    V = len(vocab)
    X, y = cbow_windows(train_ids, window)
    Xv, yv = cbow_windows(valid_ids, window)
    counts = np.bincount(train_ids, minlength=V).astype(np.float64)
    entropy, unigram_val = unigram_baseline(train_ids, yv, V)
    cbow = CBOW(V, dim, rng=seed)
    cbow.weight.value *= 0.1
    if head == "softmax":
        out = Linear(dim, V, rng=seed + 1)
        model, loss = Sequential(cbow, out), CrossEntropyLoss()
    else:
        out = HierarchicalSoftmax(dim, V, tree=tree, counts=counts) if head == "hs" else \
            NegativeSampling(dim, V, k=k, counts=counts)
        model = WordVectors(cbow, out)
        loss = HeadLoss(model.head)
    opt = Adam(model.parameters(), lr=lr)
    start = time.perf_counter()
    hist = fit(model, loss, opt, X, y, epochs=epochs, batch_size=batch_size, validation_data=(Xv, yv),
               seed=seed, progress=progress)
    seconds = time.perf_counter() - start
    with no_grad():
        h = cbow.forward(Xv, train=False)
        if head == "softmax":
            logits = out.forward(h, train=False)
            m = logits.max(axis=1, keepdims=True)
            lp_y = logits[np.arange(len(yv)), yv] - (m[:, 0] + np.log(np.exp(logits - m).sum(axis=1)))
        elif head == "hs":
            lp_y = -out.forward(h, yv, train=False)                     # ℓ = −log p(w | context)
        else:
            lp_y = np.concatenate([out.log_prob(h[i:i + 1024])[np.arange(len(yv[i:i + 1024])), yv[i:i + 1024]]
                                   for i in range(0, len(yv), 1024)])
    return Result(head=head, vocab=vocab, embeddings=cbow.weight.value.copy(), val_loss=hist["val_loss"][-1],
                  val_nll=float(-lp_y.mean()), unigram_entropy=entropy, unigram_val=unigram_val, seconds=seconds,
                  epochs=epochs, n_train=len(y), counts=counts, history=hist.history, model=model)


def neighbours(result, words=QUERY_WORDS, k=5):
    """{word: [(neighbour, cosine), …]} for the query words in the vocabulary."""
    vocab = result.vocab
    present = [w for w in words if w in vocab]
    ids, sims = nearest_neighbors(result.embeddings, [vocab.stoi[w] for w in present], k=k)
    return {w: [(vocab.itos[j], float(s)) for j, s in zip(row, srow)] for w, row, srow in zip(present, ids, sims)}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--head", choices=["hs", "ns", "softmax"], default="hs")
    ap.add_argument("--tree", choices=["huffman", "balanced"], default="huffman")
    ap.add_argument("--dim", type=int, default=None)
    ap.add_argument("--window", type=int, default=2, help="W: context words on each side")
    ap.add_argument("--epochs", type=int, default=None)
    ap.add_argument("--batch-size", type=int, default=None, help="256 (--full: 128)")
    ap.add_argument("--lr", type=float, default=None, help="Adam's step, 0.01 (--full: 0.001)")
    ap.add_argument("--k", type=int, default=5, help="negatives per example (--head ns)")
    ap.add_argument("--max-words", type=int, default=None, help="use only the first training words")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--full", action="store_true", help="100-d vectors, 3 epochs of batch 128 at lr 0.001")
    args = ap.parse_args(argv)
    dim = args.dim or (100 if args.full else 32)
    epochs = args.epochs or (3 if args.full else 1)
    batch_size = args.batch_size or (128 if args.full else 256)
    lr = args.lr or (0.001 if args.full else 0.01)
    r = train(args.head, args.tree, dim, args.window, epochs, batch_size, lr, args.k, args.max_words,
              seed=args.seed, progress="auto")
    label = {"hs": f"hierarchical softmax ({args.tree} tree)", "ns": f"negative sampling (k = {args.k})",
             "softmax": "plain softmax"}[args.head]
    print(f"CBOW, {label}: V = {len(r.vocab)}, D = {dim}, W = {args.window}, {r.n_train} training windows, "
          f"{epochs} epoch(s), {r.seconds:.1f} s")
    print(f"unigram baseline: entropy {r.unigram_entropy:.3f} nats (training words), "
          f"cross-entropy on the validation words {r.unigram_val:.3f} nats")
    if args.head == "ns":
        print(f"validation: sampled objective {r.val_loss:.3f}; plain softmax over the output vectors "
              f"{r.val_nll:.3f} nats per word (not what negative sampling optimises)")
    else:
        print(f"validation: −log p(w | context) = {r.val_nll:.3f} nats per word "
              f"({'below' if r.val_nll < r.unigram_val else 'NOT below'} the unigram {r.unigram_val:.3f})")
    for w, nb in neighbours(r).items():
        print(f"  {w:8s} " + ", ".join(f"{n} ({s:.2f})" for n, s in nb))
    return 0


if __name__ == "__main__":
    sys.exit(main())
