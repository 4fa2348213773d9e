#!/usr/bin/python3
"""Write tests/fixtures/declip.fx, the PyTorch reference for cx_declip_loss
(lib/objective/declip.h) that tests/check_declip.c compares against: the multi-view term
(2 image views x 2 caption views, the mean of the four symmetric CLIP losses) and the
nearest-neighbour term (each image against the queued nearest neighbour of its caption view),
weighted, with the gradients in the towers' raw outputs and in theta (scale = exp(theta)); and the
SimSiam image self-supervision (projector, predictor, training-mode batch norm, the
stop-gradient negative cosine) with its gradients in the features and every parameter.

Run with Debian's interpreter (python3-torch), from anywhere:

    /usr/bin/python3 scripts/make_fixtures_declip.py            # rewrites tests/fixtures/declip.fx
    /usr/bin/python3 scripts/make_fixtures_declip.py --check    # exit 1 if the committed file differs

Written in torch from methods.md (section 6), not from the C code; float64 autograd on inputs
rounded to float32, the same conventions and writer as scripts/make_fixtures.py.
"""
import os
import sys

import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.dont_write_bytecode = True  # scripts/ ships in the tarball: leave no __pycache__ there
sys.path.insert(0, HERE)
from make_fixtures import OUT, Fixture, f32, randn  # noqa: E402

NAME = "declip.fx"
WHAT = ("DeCLIP: multi-view CLIP losses and nearest-neighbour supervision from a caption "
        "queue, weighted; d image outputs, d caption outputs, d theta; SimSiam's head and "
        "stop-gradient loss on two image views, d features, d parameters")


def clip_loss(img, txt, scale):
    logits = scale * img @ txt.t()
    y = torch.arange(img.shape[0])
    return (F.cross_entropy(logits, y) + F.cross_entropy(logits.t(), y)) / 2


def case(fx, g, prefix, B, D, filled, w_mv, w_nns):
    fx.add(prefix + "_dims", torch.tensor([B, D, filled]), integer=True)
    fx.add(prefix + "_weights", torch.tensor([w_mv, w_nns]))
    f = randn(g, 2 * B, D).requires_grad_(True)
    t = randn(g, 2 * B, D).requires_grad_(True)
    theta = torch.tensor(f32(torch.tensor(1.2)).item(), requires_grad=True)
    queue = f32(F.normalize(randn(g, max(filled, 1), D), dim=1))
    fx.add(prefix + "_f", f)
    fx.add(prefix + "_g", t)
    fx.add(prefix + "_theta", theta)
    fx.add(prefix + "_queue", queue)
    scale = torch.exp(theta)
    img, txt = F.normalize(f, dim=1), F.normalize(t, dim=1)
    views_i, views_t = (img[:B], img[B:]), (txt[:B], txt[B:])
    mv = sum(clip_loss(a, b, scale) for a in views_i for b in views_t) / 4
    loss = w_mv * mv
    if filled > 0:
        nns = 0
        for v in range(2):
            nn = queue[(views_t[v].detach() @ queue.t()).argmax(dim=1)]
            logits = scale * views_i[v] @ nn.t()
            nns = nns + F.cross_entropy(logits, torch.arange(B))
        loss = loss + w_nns * nns / 2
    loss.backward()
    fx.add(prefix + "_loss", loss)
    fx.add(prefix + "_df", f.grad)
    fx.add(prefix + "_dg", t.grad)
    fx.add(prefix + "_dtheta", theta.grad)


def simsiam_case(fx, g, prefix, B, E):
    """SimSiam on the image features f (2B, E): projector fc0 bn0 relu fc1 bn1 relu fc2 bn2 (z),
    predictor fc3 bn3 relu fc4 (p) with a bottleneck of max(1, E // 4); each view its own
    batch (training-mode batch norm, eps 1e-5); L = -1/2 [cos(p1, sg z2) + cos(p2, sg z1)]."""
    P = max(1, E // 4)
    dims = [(E, E), (E, E), (E, E), (E, P), (P, E)]
    fx.add(prefix + "_dims", torch.tensor([B, E]), integer=True)
    f = randn(g, 2 * B, E).requires_grad_(True)
    fx.add(prefix + "_f", f)
    params = []
    for k, (i, o) in enumerate(dims):
        w = randn(g, o, i, sd=i ** -0.5).requires_grad_(True)
        b = randn(g, o, sd=0.1).requires_grad_(True)
        fx.add("%s_fc%d_weight" % (prefix, k), w)
        fx.add("%s_fc%d_bias" % (prefix, k), b)
        params += [("fc%d_weight" % k, w), ("fc%d_bias" % k, b)]
    bns = []
    for k in range(4):
        o = dims[k][1]
        gam = f32(1 + 0.2 * torch.rand(o, generator=g, dtype=torch.float64)).requires_grad_(True)
        bet = randn(g, o, sd=0.2).requires_grad_(True)
        fx.add("%s_bn%d_weight" % (prefix, k), gam)
        fx.add("%s_bn%d_bias" % (prefix, k), bet)
        params += [("bn%d_weight" % k, gam), ("bn%d_bias" % k, bet)]
        bns.append((gam, bet))
    W = dict(params)

    def bn(x, k):
        return F.batch_norm(x, None, None, bns[k][0], bns[k][1], training=True, eps=1e-5)

    def head(x):
        h = F.relu(bn(F.linear(x, W["fc0_weight"], W["fc0_bias"]), 0))
        h = F.relu(bn(F.linear(h, W["fc1_weight"], W["fc1_bias"]), 1))
        z = bn(F.linear(h, W["fc2_weight"], W["fc2_bias"]), 2)
        q = F.relu(bn(F.linear(z, W["fc3_weight"], W["fc3_bias"]), 3))
        return z, F.linear(q, W["fc4_weight"], W["fc4_bias"])

    z1, p1 = head(f[:B])
    z2, p2 = head(f[B:])
    loss = -0.5 * (F.cosine_similarity(p1, z2.detach(), dim=1).mean()
                   + F.cosine_similarity(p2, z1.detach(), dim=1).mean())
    loss.backward()
    fx.add(prefix + "_loss", loss)
    fx.add(prefix + "_df", f.grad)
    for name, t in params:
        fx.add("%s_d%s" % (prefix, name), t.grad)


def make(fx):
    g = torch.Generator().manual_seed(1602)
    case(fx, g, "both", B=5, D=4, filled=9, w_mv=0.4, w_nns=0.2)
    case(fx, g, "mv", B=4, D=6, filled=0, w_mv=1.0, w_nns=0.2)
    case(fx, g, "nns", B=6, D=3, filled=4, w_mv=0.0, w_nns=0.7)
    simsiam_case(fx, g, "iss", B=6, E=8)


def main(argv):
    check = "--check" in argv[1:]
    torch.set_default_dtype(torch.float64)
    torch.set_num_threads(1)
    fx = Fixture(NAME, WHAT)
    fx.lines[1] = fx.lines[1].replace("make_fixtures.py", "make_fixtures_declip.py")
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
