"""Train the notes' MLP on the bundled 8×8 digits and report test accuracy.

    python scripts/train_digits.py [--epochs 30] [--hidden 256 128] [--seed 0]

Uses engine.data's fixed train/test split (1,438 / 359 images), pixels standardised with the
training set's mean and spread, an MLP 64-256-128-10 with ReLU, softmax cross-entropy and Adam.
Typical result: 97-98% test accuracy in a few seconds.
"""
import argparse
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from engine import fit  # noqa: E402
from engine.data import digits_split  # noqa: E402
from engine.losses import CrossEntropyLoss  # noqa: E402
from engine.optim import Adam  # noqa: E402
from engine.train import evaluate  # noqa: E402
from layers import MLP  # noqa: E402


def standardize(X_train, X_test, floor=0.1):
    """(X − μ) / (σ + floor) with μ, σ per pixel from the training set (the floor keeps the
    always-blank border pixels from being blown up)."""
    mu, sd = X_train.mean(axis=0), X_train.std(axis=0) + floor
    return (X_train - mu) / sd, (X_test - mu) / sd


def train(epochs=30, hidden=(256, 128), lr=1e-3, batch_size=32, seed=0, progress="auto"):
    """Returns (model, history, test_accuracy, seconds)."""
    (Xtr, ytr), (Xte, yte) = digits_split()
    Xtr, Xte = standardize(Xtr, Xte)
    model = MLP([64, *hidden, 10], activation="relu", rng=seed)
    loss = CrossEntropyLoss()
    start = time.perf_counter()
    history = fit(model, loss, Adam(model.parameters(), lr=lr), Xtr, ytr, epochs=epochs,
                  batch_size=batch_size, validation_data=(Xte, yte), metrics=["accuracy"],
                  seed=seed, progress=progress)
    _, m = evaluate(model, loss, Xte, yte, metrics=["accuracy"])
    return model, history, m["accuracy"], time.perf_counter() - start


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--hidden", type=int, nargs="+", default=[256, 128])
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    _, history, acc, seconds = train(args.epochs, tuple(args.hidden), args.lr, seed=args.seed)
    print(f"train loss {history['loss'][-1]:.4f}  test accuracy {acc:.4f}  ({seconds:.1f} s training)")
    return 0 if acc >= 0.97 else 1


if __name__ == "__main__":
    sys.exit(main())
