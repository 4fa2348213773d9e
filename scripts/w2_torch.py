#!/usr/bin/python3
"""The PyTorch side of benchmark W2 (../shared/bench.md): the small CLIP with transformer towers
of experiments/w2-clip.yaml on W1's long-tailed Fashion-MNIST subset, timed without data
loading. Prints one JSON object: samples/s, peak RSS, zero-shot test accuracy, head/mid/tail.

Run with Debian's interpreter (python3-torch, python3-numpy):
  /usr/bin/python3 scripts/w2_torch.py --subset S --threads 2
"""
import argparse
import json
import math
import resource
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

import w1_torch as w1

SOT, EOT = 2, 3


class SeqVocab(w1.Vocab):
    """clipx's sequence vocabulary: <pad> <unk> <sot> <eot> <mask>, then words by count."""

    def __init__(self, texts):
        super().__init__(texts)
        self.ids = {w: i + 3 for w, i in self.ids.items()}
        self.size += 3

    def encode(self, text, max_tokens):
        ids = [self.ids.get(w, 1) for w in w1.words(text)][:max_tokens - 2]
        ids = [SOT] + ids + [EOT]
        return ids + [0] * (max_tokens - len(ids))


class Block(nn.Module):
    """Pre-norm block: x + Attn(LN(x)), x + MLP(LN(x)) with exact GELU (open_clip, timm)."""

    def __init__(self, width, heads, mlp, layers):
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(width), nn.LayerNorm(width)
        self.attn = nn.MultiheadAttention(width, heads, batch_first=True)
        self.fc, self.proj = nn.Linear(width, mlp), nn.Linear(mlp, width)
        # clipx's initialisation (lib/model/transformer.h), open_clip's text transformer's.
        proj_sd = width ** -0.5 * (2 * layers) ** -0.5
        with torch.no_grad():
            nn.init.normal_(self.attn.in_proj_weight, std=width ** -0.5)
            nn.init.normal_(self.attn.out_proj.weight, std=proj_sd)
            nn.init.normal_(self.fc.weight, std=(2 * width) ** -0.5)
            nn.init.normal_(self.proj.weight, std=proj_sd)
            for b in (self.attn.in_proj_bias, self.attn.out_proj.bias, self.fc.bias, self.proj.bias):
                b.zero_()

    def forward(self, x, mask=None):
        h = self.ln1(x)
        x = x + self.attn(h, h, h, need_weights=False, attn_mask=mask)[0]
        return x + self.proj(F.gelu(self.fc(self.ln2(x))))


class ViT(nn.Module):
    def __init__(self, patch=7, width=128, layers=4, heads=4, mlp=512, out=128, side=28):
        super().__init__()
        tokens = (side // patch) ** 2 + 1
        self.patch_embed = nn.Conv2d(1, width, patch, patch, bias=False)
        self.cls = nn.Parameter(torch.randn(width) * width ** -0.5)
        self.pos_embed = nn.Parameter(torch.randn(tokens, width) * width ** -0.5)
        self.blocks = nn.ModuleList(Block(width, heads, mlp, layers) for _ in range(layers))
        self.ln_final = nn.LayerNorm(width)
        self.proj = nn.Parameter(torch.randn(out, width) * width ** -0.5)

    def forward(self, x):
        p = self.patch_embed(x).flatten(2).transpose(1, 2)
        x = torch.cat([self.cls.expand(p.shape[0], 1, -1), p], 1) + self.pos_embed
        for b in self.blocks:
            x = b(x)
        return self.ln_final(x[:, 0]) @ self.proj.t()


class TextTransformer(nn.Module):
    def __init__(self, vocab, tokens=16, width=128, layers=2, heads=4, mlp=512, out=128):
        super().__init__()
        self.embed = nn.Parameter(torch.randn(vocab, width) * 0.02)
        self.pos_embed = nn.Parameter(torch.randn(tokens, width) * 0.01)
        self.blocks = nn.ModuleList(Block(width, heads, mlp, layers) for _ in range(layers))
        self.ln_final = nn.LayerNorm(width)
        self.proj = nn.Parameter(torch.randn(out, width) * width ** -0.5)
        self.register_buffer("mask", torch.triu(torch.full((tokens, tokens), float("-inf")), 1))

    def forward(self, tokens):
        x = self.embed[tokens] + self.pos_embed
        for b in self.blocks:
            x = b(x, self.mask)
        eot = (tokens == EOT).int().argmax(1)
        return self.ln_final(x[torch.arange(x.shape[0]), eot]) @ self.proj.t()


def param_groups(modules, wd):
    """Decay on matrices only: none on biases, norms, embeddings (token, position, CLS)."""
    decay, no_decay = [], []
    for m in modules:
        for name, p in m.named_parameters():
            skip = p.ndim < 2 or "embed" in name and "patch" not in name or name == "cls"
            (no_decay if skip else decay).append(p)
    return [{"params": decay, "weight_decay": wd}, {"params": no_decay, "weight_decay": 0.0}]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--subset", required=True, help="SUBSET file written by clipx subsample")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--max-tokens", type=int, default=16)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)

    x_all = w1.read_idx(f"{w1.DATA}/train-images-idx3-ubyte.gz")
    y_all = w1.read_idx(f"{w1.DATA}/train-labels-idx1-ubyte.gz").astype(np.int64)
    keep = w1.read_subset(args.subset)
    x = torch.from_numpy(x_all[keep].astype(np.float32) / 255.0).unsqueeze(1)
    y = torch.from_numpy(y_all[keep])
    x_test = torch.from_numpy(w1.read_idx(f"{w1.DATA}/t10k-images-idx3-ubyte.gz")
                              .astype(np.float32) / 255.0).unsqueeze(1)
    y_test = w1.read_idx(f"{w1.DATA}/t10k-labels-idx1-ubyte.gz").astype(np.int64)
    counts = np.bincount(y.numpy(), minlength=10)
    n = len(keep)

    prompts = [[t.format(c) for t in w1.TEMPLATES] for c in w1.CLASSES]
    vocab = SeqVocab([p for ps in prompts for p in ps])
    tokens = torch.tensor([[vocab.encode(p, args.max_tokens) for p in ps] for ps in prompts])
    image, text = ViT(), TextTransformer(vocab.size, args.max_tokens)
    logit_scale = nn.Parameter(torch.tensor(math.log(1 / 0.07)))
    groups = param_groups([image, text], 0.1)
    groups[1]["params"].append(logit_scale)
    opt = torch.optim.AdamW(groups, lr=1e-3, betas=(0.9, 0.98), eps=1e-6)
    steps_per_epoch = n // args.batch
    total, warmup = steps_per_epoch * args.epochs, 100

    def lr_at(step):  # clipx's schedule: linear warm-up from lr/warmup, then cosine to 0
        if step < warmup:
            return 1e-3 * (step + 1) / warmup
        return 0.5 * (1 + math.cos(math.pi * (step - warmup) / (total - warmup))) * 1e-3

    targets = torch.arange(args.batch)
    step = 0
    start = time.perf_counter()
    for epoch in range(args.epochs):
        perm = torch.from_numpy(rng.permutation(n))
        for s in range(steps_per_epoch):
            idx = perm[s * args.batch:(s + 1) * args.batch]
            xb, yb = x[idx], y[idx]
            tmpl = torch.from_numpy(rng.integers(0, len(w1.TEMPLATES), args.batch))
            for g in opt.param_groups:
                g["lr"] = lr_at(step)
            f = F.normalize(image(xb), dim=-1)
            g = F.normalize(text(tokens[yb, tmpl]), dim=-1)
            logits = logit_scale.exp() * f @ g.t()
            loss = (F.cross_entropy(logits, targets) + F.cross_entropy(logits.t(), targets)) / 2
            opt.zero_grad(set_to_none=False)
            loss.backward()
            opt.step()
            with torch.no_grad():
                logit_scale.clamp_(0, math.log(100))
            step += 1
    seconds = time.perf_counter() - start

    with torch.no_grad():
        feats = torch.cat([image(x_test[i:i + 1000]) for i in range(0, len(x_test), 1000)])
        emb = F.normalize(text(tokens.reshape(-1, args.max_tokens)), dim=-1).reshape(10, len(w1.TEMPLATES), -1)
        classifier = F.normalize(emb.mean(1), dim=-1)
        pred = (F.normalize(feats, dim=-1) @ classifier.t()).argmax(1).numpy()
    acc = [float((pred[y_test == c] == c).mean()) for c in range(10)]
    head_acc, mid_acc, tail_acc = w1.thirds(acc, counts.tolist())
    print(json.dumps({
        "impl": "pytorch", "variant": "w2-clip", "threads": args.threads,
        "samples": total * args.batch, "train_seconds": seconds,
        "samples_per_s": total * args.batch / seconds,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
        "test_acc": float(np.mean(acc)), "head": head_acc, "mid": mid_acc, "tail": tail_acc,
        "per_class": acc}))


if __name__ == "__main__":
    main()
