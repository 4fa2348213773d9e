#!/usr/bin/python3
"""Write a feature-only dataset: what exporting a frozen CLIP's features gives (README,
"Bring your own features"), with synthetic numbers.

    /usr/bin/python3 scripts/make_features.py OUT [--classes C] [--dim D] [--train N]
        [--test N] [--seed S] [--f64] [--zeroshot]

OUT/ gets train-features.npy (N, D) float32 (float64 with --f64, which clipx converts),
train-labels.npy int64, test-features.npy, test-labels.txt (one integer a line, the other
label format), class-embeddings.npy (C, D), classes.txt and dataset.yaml. Each class has a
random direction; a sample is its class's direction times a random length plus Gaussian
noise, so the zero-shot classifier (the directions, slightly perturbed) is right often but not
always. The training split is long-tailed (n_c proportional to 0.5^(c / (C - 1) * 4)).

With --zeroshot, prints the zero-shot top-1 accuracy numpy computes on the test split from
the files just written (cosine of L2-normalised features and class embeddings, argmax; ties
go to the lower class as in clipx) and the predictions per class, on two lines.
The tests compare that with `clipx eval --mode zeroshot --json`.
"""
import argparse
import os

import numpy as np


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--classes", type=int, default=5)
    ap.add_argument("--dim", type=int, default=12)
    ap.add_argument("--train", type=int, default=400)
    ap.add_argument("--test", type=int, default=100)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--f64", action="store_true")
    ap.add_argument("--zeroshot", action="store_true")
    a = ap.parse_args()
    rng = np.random.default_rng(a.seed)
    C, D = a.classes, a.dim
    dirs = rng.standard_normal((C, D))
    dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)

    w = 0.5 ** (np.arange(C) / max(C - 1, 1) * 4.0)
    counts = np.maximum(1, np.round(a.train * w / w.sum())).astype(int)
    y_train = np.repeat(np.arange(C), counts)
    rng.shuffle(y_train)
    y_test = np.arange(a.test) % C

    def samples(y):
        length = 1.0 + rng.random(len(y))
        return dirs[y] * length[:, None] + 0.45 * rng.standard_normal((len(y), D))

    ftype = np.float64 if a.f64 else np.float32
    x_train = samples(y_train).astype(ftype)
    x_test = samples(y_test).astype(np.float32)
    emb = (dirs + 0.15 * rng.standard_normal((C, D))).astype(np.float32)

    os.makedirs(a.out, exist_ok=True)
    np.save(os.path.join(a.out, "train-features.npy"), x_train)
    np.save(os.path.join(a.out, "train-labels.npy"), y_train.astype(np.int64))
    np.save(os.path.join(a.out, "test-features.npy"), x_test)
    with open(os.path.join(a.out, "test-labels.txt"), "w") as f:
        f.write("".join("%d\n" % v for v in y_test))
    np.save(os.path.join(a.out, "class-embeddings.npy"), emb)
    with open(os.path.join(a.out, "classes.txt"), "w") as f:
        f.write("".join("class%d\n" % c for c in range(C)))
    with open(os.path.join(a.out, "dataset.yaml"), "w") as f:
        f.write("name: features\n"
                "classes: classes.txt\n"
                "class_embeddings: class-embeddings.npy\n"
                "train: {images: train-features.npy, labels: train-labels.npy}\n"
                "test: {images: test-features.npy, labels: test-labels.txt}\n")

    if a.zeroshot:
        x = np.load(os.path.join(a.out, "test-features.npy")).astype(np.float64)
        t = np.load(os.path.join(a.out, "class-embeddings.npy")).astype(np.float64)
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        t /= np.linalg.norm(t, axis=1, keepdims=True)
        pred = np.argmax(x @ t.T, axis=1)
        print("%.6f" % np.mean(pred == y_test))
        print(" ".join(str(v) for v in np.bincount(pred, minlength=C)))


if __name__ == "__main__":
    main()
