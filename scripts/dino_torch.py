#!/usr/bin/python3
"""The PyTorch side of the DINO benchmark (issue 16): clipx's DINO step of
experiments/dino-bench.yaml on W1's long-tailed Fashion-MNIST subset, timed without data
loading. Prints one JSON object: samples/s (steps only), samples, seconds, peak RSS, BLAS core.

Per step, as lib/train/dino_step.c: two views of the batch by random resized crop (area in
--crop-scale, aspect [3/4, 4/3] log-uniform, torchvision's box draw, bilinear resampling); the
student (MLP 784-1024-1024-256 ReLU, head 256-2048-2048-256 GELU, L2-normalised) and its EMA
teacher run once over both views; a random K of the P prototypes (randperm(P)[:K], sorted, one
draw shared by student and teacher); cosine scores against the L2-normalised prototypes; the
teacher's targets by Sinkhorn-Knopp per view (double precision, temperature 0.04, 3 iterations);
the loss H(t_b, softmax(s_a / 0.1)) + H(t_a, softmax(s_b / 0.1)), halved, mean over the batch;
AdamW (lr 1e-3, weight decay 1e-4, none on biases); then the teacher's EMA with the momentum
rising from 0.996 to 1 by a cosine over the steps.

What differs from clipx, none of it in the work a step does:
- the random streams (the permutation, crop boxes, initial weights) are numpy's and torch's, not
  clipx's, so the numbers are not bit-identical;
- the crops of a batch are resampled in one affine_grid + grid_sample call (the batched way in
  PyTorch), equal to interpolate on each cropped image to float rounding.

Run with Debian's interpreter (python3-torch, python3-numpy):
  /usr/bin/python3 scripts/dino_torch.py --subset S --threads 2
"""
import argparse
import copy
import json
import math
import resource
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, __file__.rsplit("/", 1)[0])
import w1_torch as w1  # noqa: E402


def head(in_dim, hidden, out):
    return nn.Sequential(nn.Linear(in_dim, hidden), nn.GELU(), nn.Linear(hidden, hidden),
                         nn.GELU(), nn.Linear(hidden, out))


def crop_box(rng, H, W, scale, ratio):
    """torchvision's RandomResizedCrop.get_params (clipx's cx_aug_crop_box): top, left, h, w."""
    area = H * W
    lr0, lr1 = math.log(ratio[0]), math.log(ratio[1])
    for _ in range(10):
        target = area * rng.uniform(scale[0], scale[1])
        aspect = math.exp(rng.uniform(lr0, lr1))
        w = round(math.sqrt(target * aspect))
        h = round(math.sqrt(target / aspect))
        if 0 < w <= W and 0 < h <= H:
            return int(rng.integers(0, H - h + 1)), int(rng.integers(0, W - w + 1)), h, w
    in_ratio = W / H
    w, h = W, H
    if in_ratio < ratio[0]:
        h = round(w / ratio[0])
    elif in_ratio > ratio[1]:
        w = round(h * ratio[1])
    return (H - h) // 2, (W - w) // 2, max(h, 1), max(w, 1)


def resized_crops(x, boxes):
    """Each image of x (N, 1, H, W) cropped to its box and resized back to H x W, bilinear with
    align_corners=False (the source-pixel convention of clipx and torch's interpolate)."""
    N, _, H, W = x.shape
    b = torch.tensor(boxes, dtype=torch.float32)  # top, left, h, w
    theta = torch.zeros(N, 2, 3)
    theta[:, 0, 0] = b[:, 3] / W
    theta[:, 0, 2] = (2 * b[:, 1] + b[:, 3]) / W - 1
    theta[:, 1, 1] = b[:, 2] / H
    theta[:, 1, 2] = (2 * b[:, 0] + b[:, 2]) / H - 1
    grid = F.affine_grid(theta, [N, 1, H, W], align_corners=False)
    # Source points outside the crop's first and last pixel centres clamp to them, as
    # interpolate on the cropped image (and clipx) does.
    lo = torch.stack([(2 * b[:, 1] + 1) / W - 1, (2 * b[:, 0] + 1) / H - 1], 1)[:, None, None]
    hi = torch.stack([(2 * (b[:, 1] + b[:, 3]) - 1) / W - 1,
                      (2 * (b[:, 0] + b[:, 2]) - 1) / H - 1], 1)[:, None, None]
    grid = torch.minimum(torch.maximum(grid, lo), hi)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


def sinkhorn(scores, temp, iters):
    """Sinkhorn-Knopp targets of one view's (B, K) teacher scores, as cx_dino_sinkhorn: Q =
    exp(scores / temp) / sum, then iters times prototypes to 1/K and samples to 1/B; rows of
    the result sum to 1."""
    B, K = scores.shape
    q = scores.double()
    q = torch.exp((q - q.max()) / temp)
    q /= q.sum()
    for _ in range(iters):
        q /= q.sum(0, keepdim=True) * K
        q /= q.sum(1, keepdim=True) * B
    return (q * B).float()


def view_ce(student, target, temp):
    return -(target * F.log_softmax(student / temp, dim=1)).sum(1).mean()


def momentum_at(m0, step, total):
    """cx_dino_momentum: m0 rising to 1 by a cosine over the steps."""
    if total <= 0 or step >= total:
        return 1.0
    return 1.0 - (1.0 - m0) * (1.0 + math.cos(math.pi * step / total)) / 2.0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--subset", required=True, help="SUBSET file written by clipx subsample")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--prototypes", type=int, default=4096)
    ap.add_argument("--sample-k", type=int, default=1024, help="0: all prototypes")
    ap.add_argument("--hidden", type=int, default=2048)
    ap.add_argument("--bottleneck", type=int, default=256)
    ap.add_argument("--sinkhorn-iters", type=int, default=3)
    ap.add_argument("--student-temp", type=float, default=0.1)
    ap.add_argument("--teacher-temp", type=float, default=0.04)
    ap.add_argument("--momentum", type=float, default=0.996)
    ap.add_argument("--crop-scale", type=float, nargs=2, default=[0.4, 1.0])
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--wd", type=float, default=1e-4)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)

    x_all = w1.read_idx(f"{w1.DATA}/train-images-idx3-ubyte.gz")
    keep = w1.read_subset(args.subset)
    x = torch.from_numpy(x_all[keep].astype(np.float32) / 255.0).unsqueeze(1)
    n, _, H, W = x.shape
    P, D = args.prototypes, args.bottleneck
    K = P if args.sample_k in (0, P) else args.sample_k

    tower, proj = w1.mlp(), head(256, args.hidden, D)
    protos = nn.Parameter(torch.empty(P, D).uniform_(-D ** -0.5, D ** -0.5))
    t_tower, t_proj = copy.deepcopy(tower), copy.deepcopy(proj)
    t_protos = protos.detach().clone()
    for p in list(t_tower.parameters()) + list(t_proj.parameters()):
        p.requires_grad_(False)
    groups = w1.param_groups([tower, proj], args.wd)
    groups[0]["params"].append(protos)
    opt = torch.optim.AdamW(groups, lr=args.lr, betas=(0.9, 0.999), eps=1e-8)
    students = list(tower.parameters()) + list(proj.parameters()) + [protos]
    teachers = list(t_tower.parameters()) + list(t_proj.parameters()) + [t_protos]

    B = args.batch
    steps_per_epoch = n // B
    total = steps_per_epoch * args.epochs
    ratio = (3 / 4, 4 / 3)
    step, loss_sum = 0, 0.0
    start = time.perf_counter()
    for epoch in range(args.epochs):
        perm = torch.from_numpy(rng.permutation(n))
        loss_sum = 0.0
        for s in range(steps_per_epoch):
            xb = x[perm[s * B:(s + 1) * B]]
            boxes = [crop_box(rng, H, W, args.crop_scale, ratio) for _ in range(2 * B)]
            views = resized_crops(torch.cat([xb, xb]), boxes).flatten(1)  # view a, then b
            idx = torch.randperm(P)[:K].sort().values if K < P else torch.arange(P)

            # The head's output is L2-normalised, and the prototype layer normalises its input
            # again (a no-op up to rounding), as clipx's cx_dino_proto_forward does.
            with torch.no_grad():
                tz = F.normalize(t_proj(t_tower(views)), dim=1)
                ts = F.normalize(tz, dim=1) @ F.normalize(t_protos[idx], dim=1).t()
                t_a = sinkhorn(ts[:B], args.teacher_temp, args.sinkhorn_iters)
                t_b = sinkhorn(ts[B:], args.teacher_temp, args.sinkhorn_iters)
            sz = F.normalize(proj(tower(views)), dim=1)
            ss = F.normalize(sz, dim=1) @ F.normalize(protos[idx], dim=1).t()
            loss = (view_ce(ss[:B], t_b, args.student_temp) +
                    view_ce(ss[B:], t_a, args.student_temp)) / 2
            opt.zero_grad(set_to_none=False)
            loss.backward()
            opt.step()
            with torch.no_grad():
                m = momentum_at(args.momentum, step, total)
                torch._foreach_mul_(teachers, m)
                torch._foreach_add_(teachers, students, alpha=1 - m)
            loss_sum += loss.item()
            step += 1
    seconds = time.perf_counter() - start

    print(json.dumps({
        "impl": "pytorch", "variant": "dino", "threads": args.threads,
        "blas_core": w1.blas_core(), "prototypes": P, "sample_k": K,
        "samples": total * B, "train_seconds": seconds, "samples_per_s": total * B / seconds,
        "last_epoch_loss": loss_sum / max(steps_per_epoch, 1),
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0}))


if __name__ == "__main__":
    main()
