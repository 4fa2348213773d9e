#!/usr/bin/python3
"""Write tests/fixtures/dino.fx, the PyTorch reference for lib/objective/dino.h that
tests/check_dino.c compares against: Sinkhorn-Knopp targets, the two-view DINO loss over a
subset of the prototypes and its gradients through the cosine prototype layer.

Run with Debian's interpreter (python3-torch), from anywhere:

    /usr/bin/python3 scripts/make_fixtures_dino.py            # rewrites tests/fixtures/dino.fx
    /usr/bin/python3 scripts/make_fixtures_dino.py --check    # exit 1 if the committed file differs

Written in torch from methods.md (sections 3 and 9), not from the C code; float64 autograd on
inputs rounded to float32, the same conventions and writer as scripts/make_fixtures.py.
"""
import os
import sys

import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.dont_write_bytecode = True  # scripts/ ships in the tarball: leave no __pycache__ there
sys.path.insert(0, HERE)
from make_fixtures import OUT, Fixture, f32, randn  # noqa: E402

NAME = "dino.fx"
WHAT = ("DINO with prototype subsampling: Sinkhorn-Knopp targets (3 and 1 iterations), "
        "the two-view loss on K of P cosine prototypes, d scores, d inputs, d prototypes")


def sinkhorn(scores, eps, iters):
    """SwAV/DINO: Q = exp(scores / eps)^T (K x B); rows then columns, iters times; columns."""
    Q = torch.exp(scores / eps).t()
    Q = Q / Q.sum()
    K, B = Q.shape
    for _ in range(iters):
        Q = Q / Q.sum(dim=1, keepdim=True)
        Q = Q / K
        Q = Q / Q.sum(dim=0, keepdim=True)
        Q = Q / B
    Q = Q * B
    return Q.t()


def dino_loss(s_a, s_b, t_a, t_b, temp_s):
    """Student view a against teacher view b and vice versa, averaged."""
    la = -(t_b * F.log_softmax(s_a / temp_s, dim=1)).sum(dim=1).mean()
    lb = -(t_a * F.log_softmax(s_b / temp_s, dim=1)).sum(dim=1).mean()
    return (la + lb) / 2


def case(fx, g, prefix, B, D, P, K, iters, temp_s=0.1, temp_t=0.04):
    fx.add(prefix + "_dims", torch.tensor([B, D, P, K, iters]), integer=True)
    fx.add(prefix + "_temps", torch.tensor([temp_s, temp_t]))
    idx = torch.sort(torch.randperm(P, generator=g)[:K]).values
    fx.add(prefix + "_idx", idx, integer=True)
    # The teacher's cosine scores on the chosen prototypes, one matrix per view.
    ts_a = f32(torch.rand(B, K, generator=g, dtype=torch.float64) * 2 - 1)
    ts_b = f32(torch.rand(B, K, generator=g, dtype=torch.float64) * 2 - 1)
    fx.add(prefix + "_tscores_a", ts_a)
    fx.add(prefix + "_tscores_b", ts_b)
    t_a = sinkhorn(ts_a, temp_t, iters)
    t_b = sinkhorn(ts_b, temp_t, iters)
    fx.add(prefix + "_targets_a", t_a)
    fx.add(prefix + "_targets_b", t_b)
    # The student: features of both views through the cosine layer on the chosen prototypes.
    x_a = randn(g, B, D).requires_grad_(True)
    x_b = randn(g, B, D).requires_grad_(True)
    W = randn(g, P, D, sd=0.5).requires_grad_(True)
    fx.add(prefix + "_x_a", x_a)
    fx.add(prefix + "_x_b", x_b)
    fx.add(prefix + "_w", W)
    wn = F.normalize(W[idx], dim=1)
    s_a = F.normalize(x_a, dim=1) @ wn.t()
    s_b = F.normalize(x_b, dim=1) @ wn.t()
    s_a.retain_grad()
    s_b.retain_grad()
    loss = dino_loss(s_a, s_b, t_a, t_b, temp_s)
    loss.backward()
    fx.add(prefix + "_s_a", s_a)
    fx.add(prefix + "_s_b", s_b)
    fx.add(prefix + "_loss", loss)
    fx.add(prefix + "_ds_a", s_a.grad)
    fx.add(prefix + "_ds_b", s_b.grad)
    fx.add(prefix + "_dx_a", x_a.grad)
    fx.add(prefix + "_dx_b", x_b.grad)
    fx.add(prefix + "_dw", W.grad)


def make(fx):
    g = torch.Generator().manual_seed(1601)
    case(fx, g, "sub", B=7, D=5, P=11, K=4, iters=3)
    case(fx, g, "all", B=5, D=6, P=6, K=6, iters=3)
    case(fx, g, "one", B=3, D=4, P=9, K=5, iters=1)


def main(argv):
    check = "--check" in argv[1:]
    torch.set_default_dtype(torch.float64)
    torch.set_num_threads(1)
    fx = Fixture(NAME, WHAT)
    fx.lines[1] = fx.lines[1].replace("make_fixtures.py", "make_fixtures_dino.py")
    make(fx)
    text = fx.text()
    path = os.path.normpath(os.path.join(OUT, NAME))
    if check:
        try:
            with open(path, encoding="ascii") as fp:
                same = fp.read() == text
        except OSError:
            same = False
        if not same:
            print("differs: %s" % path, file=sys.stderr)
            return 1
        return 0
    os.makedirs(OUT, exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="ascii") as fp:
        fp.write(text)
    os.replace(tmp, path)
    print("wrote %s" % path)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
