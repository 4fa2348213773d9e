#!/usr/bin/python3
"""The PyTorch side of benchmark W1 (../shared/bench.md): the same long-tailed Fashion-MNIST
subset, architecture, optimiser and schedule as experiments/w1-sl.yaml and w1-clip.yaml, timed
without data loading. Prints one JSON object: samples/s, peak RSS, test accuracy, head/mid/tail.

Run with Debian's interpreter (python3-torch, python3-numpy):
  /usr/bin/python3 scripts/w1_torch.py --variant sl --subset S --threads 2
"""
import argparse
import gzip
import json
import math
import re
import resource
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

DATA = "/usr/share/datasets/fashion-mnist"
CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
           "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
TEMPLATES = ["a photo of a {}.", "a blurry photo of a {}.", "a black and white photo of a {}.",
             "a low resolution photo of a {}.", "a photo of the {}."]


def read_idx(path):
    with gzip.open(path, "rb") as f:
        data = f.read()
    ndim = data[3]
    shape = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


def read_subset(path):
    with open(path) as f:
        header = f.readline().rstrip("\n")
        if header != "index\tlabel":
            sys.exit(f"{path}: line 1: not a SUBSET file")
        return np.array([int(line.split("\t")[0]) for line in f], dtype=np.int64)


def words(text):
    # The clipx tokenizer: lower-cased runs of letters and digits.
    return re.findall(r"[a-z0-9\x80-\U0010ffff]+", text.lower())


class Vocab:
    def __init__(self, texts):
        counts = {}
        for t in texts:
            for w in words(t):
                counts[w] = counts.get(w, 0) + 1
        ranked = sorted(counts, key=lambda w: (-counts[w], w))
        self.ids = {w: i + 2 for i, w in enumerate(ranked)}
        self.size = len(ranked) + 2

    def encode(self, text, max_tokens):
        ids = [self.ids.get(w, 1) for w in words(text)][:max_tokens]
        return ids + [0] * (max_tokens - len(ids))


def blas_core():
    """The OpenBLAS core torch's matrix products run on (it links Debian's libopenblas)."""
    import ctypes
    with open("/proc/self/maps") as f:
        paths = {line.split()[-1] for line in f if "libopenblas" in line}
    for path in sorted(paths):
        try:
            get = ctypes.CDLL(path).openblas_get_corename
        except (OSError, AttributeError):
            continue
        get.restype = ctypes.c_char_p
        return get().decode()
    return "unknown"


def mlp():
    return nn.Sequential(nn.Linear(784, 1024), nn.ReLU(), nn.Linear(1024, 1024), nn.ReLU(),
                         nn.Linear(1024, 256))


class TextTower(nn.Module):
    def __init__(self, vocab_size):
        super().__init__()
        self.embed = nn.EmbeddingBag(vocab_size, 256, mode="mean", padding_idx=0)
        self.proj = nn.Linear(256, 256)

    def forward(self, tokens):
        return self.proj(self.embed(tokens))


def param_groups(modules, wd):
    decay, no_decay = [], []
    for m in modules:
        for name, p in m.named_parameters():
            (no_decay if p.ndim < 2 or "bias" in name else decay).append(p)
    return [{"params": decay, "weight_decay": wd}, {"params": no_decay, "weight_decay": 0.0}]


def thirds(acc, counts):
    order = sorted(range(len(counts)), key=lambda c: (-counts[c], c))
    k = len(counts) // 3
    groups = [order[:k], order[k:len(counts) - k], order[len(counts) - k:]]
    return [float(np.mean([acc[c] for c in g])) for g in groups]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--variant", choices=["sl", "sl-bsm", "clip"], required=True)
    ap.add_argument("--subset", required=True, help="SUBSET file written by clipx subsample")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--wd", type=float, default=1e-4)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--max-tokens", type=int, default=32)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)

    x_all = read_idx(f"{DATA}/train-images-idx3-ubyte.gz").reshape(-1, 784)
    y_all = read_idx(f"{DATA}/train-labels-idx1-ubyte.gz").astype(np.int64)
    keep = read_subset(args.subset)
    x = torch.from_numpy(x_all[keep].astype(np.float32) / 255.0)
    y = torch.from_numpy(y_all[keep])
    x_test = torch.from_numpy(read_idx(f"{DATA}/t10k-images-idx3-ubyte.gz").reshape(-1, 784)
                              .astype(np.float32) / 255.0)
    y_test = read_idx(f"{DATA}/t10k-labels-idx1-ubyte.gz").astype(np.int64)
    counts = np.bincount(y.numpy(), minlength=10)
    n = len(keep)

    image = mlp()
    modules = [image]
    if args.variant == "clip":
        prompts = [[t.format(c) for t in TEMPLATES] for c in CLASSES]
        vocab = Vocab([p for ps in prompts for p in ps])
        tokens = torch.tensor([[vocab.encode(p, args.max_tokens) for p in ps] for ps in prompts])
        text = TextTower(vocab.size)
        logit_scale = nn.Parameter(torch.tensor(math.log(1 / 0.07)))
        modules.append(text)
    else:
        head = nn.Linear(256, 10)
        modules.append(head)
        log_prior = torch.log(torch.from_numpy(counts / counts.sum()).float())
    groups = param_groups(modules, args.wd)
    if args.variant == "clip":
        groups[1]["params"].append(logit_scale)
    opt = torch.optim.AdamW(groups, lr=args.lr, betas=(0.9, 0.999), eps=1e-8)

    steps_per_epoch = n // args.batch
    targets = torch.arange(args.batch)
    # Everything above is data loading and setup; the clock covers training only.
    start = time.perf_counter()
    for epoch in range(args.epochs):
        perm = torch.from_numpy(rng.permutation(n))
        for s in range(steps_per_epoch):
            idx = perm[s * args.batch:(s + 1) * args.batch]
            xb, yb = x[idx], y[idx]
            if args.variant == "clip":
                tmpl = torch.from_numpy(rng.integers(0, len(TEMPLATES), args.batch))
                f = F.normalize(image(xb), dim=-1)
                g = F.normalize(text(tokens[yb, tmpl]), dim=-1)
                logits = logit_scale.exp() * f @ g.t()
                loss = (F.cross_entropy(logits, targets) + F.cross_entropy(logits.t(), targets)) / 2
            else:
                logits = head(image(xb))
                if args.variant == "sl-bsm":
                    logits = logits + log_prior
                loss = F.cross_entropy(logits, yb)
            opt.zero_grad(set_to_none=False)
            loss.backward()
            opt.step()
            if args.variant == "clip":
                with torch.no_grad():
                    logit_scale.clamp_(0, math.log(100))
    seconds = time.perf_counter() - start

    with torch.no_grad():
        feats = image(x_test)
        if args.variant == "clip":
            emb = F.normalize(text(tokens.reshape(-1, args.max_tokens)), dim=-1).reshape(10, len(TEMPLATES), -1)
            classifier = F.normalize(emb.mean(1), dim=-1)
            pred = (F.normalize(feats, dim=-1) @ classifier.t()).argmax(1).numpy()
        else:
            pred = head(feats).argmax(1).numpy()
    acc = [float((pred[y_test == c] == c).mean()) for c in range(10)]
    head_acc, mid_acc, tail_acc = thirds(acc, counts.tolist())
    print(json.dumps({
        "impl": "pytorch", "variant": args.variant, "threads": args.threads, "blas_core": blas_core(),
        "samples": steps_per_epoch * args.epochs * args.batch, "train_seconds": seconds,
        "samples_per_s": steps_per_epoch * args.epochs * args.batch / seconds,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
        "test_acc": float(np.mean(acc)), "head": head_acc, "mid": mid_acc, "tail": tail_acc,
        "per_class": acc}))


if __name__ == "__main__":
    main()
