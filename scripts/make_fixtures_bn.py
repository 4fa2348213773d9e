#!/usr/bin/python3
"""Write tests/fixtures/bn.fx: torch.nn.BatchNorm1d (training mode, momentum 0.1, eps 1e-5)
forward, backward and running statistics over two steps, then eval mode; read by
tests/check_ops.c (batchnorm_matches_pytorch). Format and conventions as make_fixtures.py
(float64 on float32-rounded inputs, fixed seeds, repr() floats: the same bytes every run).

    /usr/bin/python3 scripts/make_fixtures_bn.py            # rewrite
    /usr/bin/python3 scripts/make_fixtures_bn.py --check    # exit 1 if the committed file differs
"""
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_fixtures import OUT, Fixture, f32, randn  # noqa: E402


def batchnorm(fx):
    g = torch.Generator().manual_seed(808)
    for B, D, affine in ((4, 6, True), (33, 40, True), (7, 5, False)):
        prefix = "b%d_d%d%s" % (B, D, "" if affine else "_noaffine")
        bn = torch.nn.BatchNorm1d(D, eps=1e-5, momentum=0.1, affine=affine).double()
        rm0 = randn(g, D, sd=0.5)
        rv0 = f32(torch.rand(D, generator=g, dtype=torch.float64) + 0.5)
        bn.running_mean.copy_(rm0)
        bn.running_var.copy_(rv0)
        if affine:
            with torch.no_grad():
                bn.weight.copy_(1.0 + randn(g, D, sd=0.3))
                bn.bias.copy_(randn(g, D, sd=0.3))
        x = (randn(g, B, D, sd=2.0) + 1.5).requires_grad_(True)
        x2 = randn(g, B, D, sd=1.0) - 0.5
        dout = randn(g, B, D)
        fx.add(prefix + "_in", x)
        fx.add(prefix + "_in2", x2)
        fx.add(prefix + "_dout", dout)
        fx.add(prefix + "_rm0", rm0)
        fx.add(prefix + "_rv0", rv0)
        if affine:
            fx.add(prefix + "_gamma", bn.weight)
            fx.add(prefix + "_beta", bn.bias)
        bn.train()
        out = bn(x)
        out.backward(dout)
        fx.add(prefix + "_out", out)
        fx.add(prefix + "_din", x.grad)
        if affine:
            fx.add(prefix + "_dgamma", bn.weight.grad)
            fx.add(prefix + "_dbeta", bn.bias.grad)
        # The C op keeps running statistics in float: round after each update.
        bn.running_mean.copy_(f32(bn.running_mean))
        bn.running_var.copy_(f32(bn.running_var))
        fx.add(prefix + "_rm1", bn.running_mean)
        fx.add(prefix + "_rv1", bn.running_var)
        with torch.no_grad():
            bn(x2)
        bn.running_mean.copy_(f32(bn.running_mean))
        bn.running_var.copy_(f32(bn.running_var))
        fx.add(prefix + "_rm2", bn.running_mean)
        fx.add(prefix + "_rv2", bn.running_var)
        bn.eval()
        with torch.no_grad():
            fx.add(prefix + "_eval_out", bn(x))


def main(argv):
    torch.set_default_dtype(torch.float64)
    torch.set_num_threads(1)
    fx = Fixture("bn.fx", "torch.nn.BatchNorm1d: training forward/backward, running statistics "
                 "over two steps (unbiased variance, momentum 0.1), eval forward")
    fx.lines[1] = fx.lines[1].replace("make_fixtures.py", "make_fixtures_bn.py")
    batchnorm(fx)
    text = fx.text()
    path = os.path.normpath(os.path.join(OUT, "bn.fx"))
    if "--check" in argv[1:]:
        try:
            with open(path, encoding="ascii") as fp:
                same = fp.read() == text
        except OSError:
            same = False
        if not same:
            print("differs: %s" % path, file=sys.stderr)
        return 0 if same else 1
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="ascii") as fp:
        fp.write(text)
    os.replace(tmp, path)
    print("wrote %s" % path)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
