#!/usr/bin/python3
"""Write tests/fixtures/cfr.fx: CFR's contrastive loss L_con (methods.md section 5) written in
torch from its formula, loss and d q by autograd, for cx_cfr_con (tests/check_retrain.c,
cfr_con_matches_torch); one CFR step, and one with L_TSC (the targeted supervised-contrastive term)
on a training batch (cfr_step_matches_torch, cfr_step_tsc_matches_torch). Both forms: "infonce" (each positive against the K hard negatives, averaged
over the positives) and "shared" (all positives in one denominator). Format and conventions as
make_fixtures.py (float64 on float32-rounded inputs, fixed seeds, repr() floats: the same bytes
every run).

    /usr/bin/python3 scripts/make_fixtures_cfr.py            # rewrite
    /usr/bin/python3 scripts/make_fixtures_cfr.py --check    # exit 1 if the committed file differs
"""
import math
import os
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_fixtures import OUT, Fixture, randn  # noqa: E402


def con_loss(q, pos, neg, tau, form):
    qh = F.normalize(q, dim=1)
    sp = torch.einsum("bd,bpd->bp", qh, F.normalize(pos, dim=2)) / tau
    sn = torch.einsum("bd,bkd->bk", qh, F.normalize(neg, dim=2)) / tau
    B, P = sp.shape
    K = sn.shape[1]
    if form == "infonce":
        logits = torch.cat([sp.unsqueeze(2), sn.unsqueeze(1).expand(B, P, K)], dim=2)
        per = torch.logsumexp(logits, dim=2) - sp
    else:
        per = torch.logsumexp(torch.cat([sp, sn], dim=1), dim=1, keepdim=True) - sp
    return per.mean(dim=1).mean()


def cfr(fx):
    g = torch.Generator().manual_seed(1505)
    cases = (  # B, P, K, D, tau, dloss
        (5, 3, 4, 6, 1.0, 1.0),
        (4, 1, 6, 8, 0.5, 1.0),
        (7, 16, 16, 12, 1.0, 0.75),
        (3, 2, 0, 5, 0.2, 2.0),
    )
    fx.add("cases", torch.tensor(len(cases)), integer=True)
    for n, (B, P, K, D, tau, dloss) in enumerate(cases):
        prefix = "c%d" % n
        q = randn(g, B, D, sd=1.5)
        pos = randn(g, B, P, D)
        neg = randn(g, B, K, D)
        # Pull the positives towards q a little, so the loss is not all noise.
        pos = (pos + 0.5 * q.unsqueeze(1)).float().double()
        fx.add(prefix + "_shape", torch.tensor([B, P, K, D]), integer=True)
        fx.add(prefix + "_tau", torch.tensor(tau))
        fx.add(prefix + "_dloss", torch.tensor(dloss))
        fx.add(prefix + "_q", q)
        fx.add(prefix + "_pos", pos)
        fx.add(prefix + "_neg", neg)
        for form in ("infonce", "shared"):
            qq = q.clone().requires_grad_(True)
            loss = con_loss(qq, pos, neg, tau, form)
            (dloss * loss).backward()
            fx.add("%s_%s_loss" % (prefix, form), loss)
            fx.add("%s_%s_dq" % (prefix, form), qq.grad)


def cfr_step(fx):
    """One CFR step: z = W x + b, CE through a frozen linear classifier, c(e) CE + c(e) lambda
    L_con(z), gradient of W and b, then plain SGD (cx_cfr_step)."""
    g = torch.Generator().manual_seed(1515)
    B, Din, Dout, C, P, K = 6, 5, 4, 3, 2, 3
    tau, lam, lr, e, E = 0.5, 0.7, 0.1, 1, 3  # c(e) = 0.75, not 1
    x = randn(g, B, Din)
    W = randn(g, Dout, Din, sd=0.5)
    b = randn(g, Dout, sd=0.1)
    Wc = randn(g, C, Dout)
    bc = randn(g, C, sd=0.1)
    pos = randn(g, B, P, Dout)
    neg = randn(g, B, K, Dout)
    y = torch.tensor([0, 1, 2, 1, 0, 2])
    cw = 1 + 0.5 * math.cos(2 * math.pi * e / E)
    for k, v in (("x", x), ("W", W), ("b", b), ("Wc", Wc), ("bc", bc), ("pos", pos), ("neg", neg)):
        fx.add("step_" + k, v)
    fx.add("step_y", y, integer=True)
    Wr, br = W.clone().requires_grad_(True), b.clone().requires_grad_(True)
    z = x @ Wr.t() + br
    loss = cw * F.cross_entropy(z @ Wc.t() + bc, y) + cw * lam * con_loss(z, pos, neg, tau, "infonce")
    loss.backward()
    fx.add("step_loss", loss.detach())
    fx.add("step_dW", Wr.grad)
    fx.add("step_db", br.grad)
    fx.add("step_W1", (W - lr * Wr.grad).float().double())
    fx.add("step_b1", (b - lr * br.grad).float().double())


def tsc_loss(z, y, queue, qlabel, targets, assign, T, tw):
    """L_TSC (the CFR authors' TSC module, targeted, no sampled positives): logits over
    [itself, queue, targets] / T; positives the queue entries of the class and the class's
    matched target; mean over the batch."""
    q = F.normalize(z, dim=1)
    self_l = (q * q).sum(1, keepdim=True)
    logits = torch.cat([self_l, q @ queue.t(), q @ targets.t()], dim=1) / T
    lp = torch.log_softmax(logits, dim=1)
    B, Q, C = z.shape[0], queue.shape[0], targets.shape[0]
    mq = (qlabel.view(1, Q) == y.view(B, 1)).double()
    mt = torch.zeros(B, C)
    mt[torch.arange(B), assign[y]] = 1
    n = 2 + mq.sum(1)
    cls = (lp[:, 0] + (mq * lp[:, 1:1 + Q]).sum(1)) / n
    tgt = tw * (mt * lp[:, 1 + Q:]).sum(1) / n
    return (-cls - tgt - lp[:, 0]).mean()


def cfr_step_tsc(fx):
    """The same step with L_TSC on a batch of training rows xt (cx_cfr_step with tsc > 0)."""
    g = torch.Generator().manual_seed(1525)
    B, Bt, Din, Dout, C, P, K, Q = 4, 5, 5, 4, 3, 2, 3, 6
    tau, lam, lr, e, E, tsc, T, tw = 0.5, 0.7, 0.1, 1, 3, 0.8, 0.07, 0.2
    x = randn(g, B, Din)
    xt = randn(g, Bt, Din)
    W = randn(g, Dout, Din, sd=0.5)
    b = randn(g, Dout, sd=0.1)
    Wc = randn(g, C, Dout)
    bc = randn(g, C, sd=0.1)
    pos = randn(g, B, P, Dout)
    neg = randn(g, B, K, Dout)
    queue = F.normalize(randn(g, Q, Dout), dim=1).float().double()
    y = torch.tensor([0, 1, 2, 1])
    yt = torch.tensor([2, 0, 1, 1, 0])
    qlabel = torch.tensor([0, 1, 1, 2, 0, 1])
    s = math.sqrt(C / (C - 1))
    targets = torch.zeros(C, Dout)
    for c in range(C):
        for d in range(C):
            targets[c, d] = s * ((d == c) - 1.0 / C)
    targets = targets.float().double()
    assign = torch.tensor([2, 0, 1])
    cw = 1 + 0.5 * math.cos(2 * math.pi * e / E)
    for k, v in (("x", x), ("xt", xt), ("W", W), ("b", b), ("Wc", Wc), ("bc", bc), ("pos", pos),
                 ("neg", neg), ("queue", queue)):
        fx.add("tstep_" + k, v)
    for k, v in (("y", y), ("yt", yt), ("qlabel", qlabel), ("assign", assign)):
        fx.add("tstep_" + k, v, integer=True)
    Wr, br = W.clone().requires_grad_(True), b.clone().requires_grad_(True)
    z = x @ Wr.t() + br
    zt = xt @ Wr.t() + br
    loss = (cw * F.cross_entropy(z @ Wc.t() + bc, y) + cw * lam * con_loss(z, pos, neg, tau, "infonce")
            + tsc * tsc_loss(zt, yt, queue, qlabel, targets, assign, T, tw))
    loss.backward()
    fx.add("tstep_loss", loss.detach())
    fx.add("tstep_dW", Wr.grad)
    fx.add("tstep_db", br.grad)


def main(argv):
    torch.set_default_dtype(torch.float64)
    torch.set_num_threads(1)
    fx = Fixture("cfr.fx", "CFR's contrastive loss L_con after F.normalize, InfoNCE per "
                 "positive and with a shared denominator; loss and dloss * d q")
    fx.lines[1] = fx.lines[1].replace("make_fixtures.py", "make_fixtures_cfr.py")
    cfr(fx)
    cfr_step(fx)
    cfr_step_tsc(fx)
    text = fx.text()
    path = os.path.normpath(os.path.join(OUT, "cfr.fx"))
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
