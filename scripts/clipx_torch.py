#!/usr/bin/python3
"""Rebuild a clipx run in PyTorch from `clipx export RUN --out weights.npz` and compute the
logits `clipx eval RUN` scores the test split with (its default mode: zero-shot for CLIP runs,
the head for SL runs).

    clipx export RUN --out w.npz
    clipx eval RUN --logits clipx.npy
    /usr/bin/python3 scripts/clipx_torch.py w.npz [--data DATASET.yaml] [--out torch.npy] \
        [--compare clipx.npy] [--tol 1e-5]

Needs only Debian's python3-torch and python3-numpy. The towers are built from config.json
(the archive's uint8 JSON member): image linear, mlp, cnn, vit or identity; text bag of words
(embedding mean then an MLP) or transformer; heads linear, cosine or text; for a retrained run
(clipx retrain) its linear classifier on the stage-1 features. Every op follows
lib/ops and lib/model: LayerNorm eps 1e-5 with the biased variance, exact (erf) GELU, attention
scaled by 1/sqrt(head width) with keys masked at and after each caption's EOT (and causally
when the text tower is causal), CNN blocks conv3x3(pad 1) -> maxpool 2x2 -> ReLU, ViT patches
flattened (channel, row, column) with CLS first, text features read at EOT (or averaged over
SOT..EOT), L2 normalisation x / max(||x||, 1e-12), zero-shot logits 100 cos(image, class)
with each class the normalised mean of its normalised prompt embeddings (the archive's
zeroshot.tokens, tokenized by clipx), cosine heads exp(theta) cos(feature, W_c).

The model runs in float64 (--float32 to run in float32), so what remains of a difference is
clipx's own float32 rounding. The test split is read from the dataset YAML (the run's, or
--data): IDX or NPY images (optionally gzipped; uint8 scaled by 1/255 as clipx does) and IDX,
NPY or text labels. --compare prints the largest absolute difference and exits 1 when it
exceeds --tol in units of the classifier's scale, max(1, scale): a linear head's logits are
compared as they are; zero-shot logits (100 cos) and cosine heads' (exp(theta) cos) by their
cosines, since at 100 one float32 ulp of clipx's own result is already 7.6e-6.
"""
import argparse
import gzip
import io
import json
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F


def fail(msg):
    print("clipx_torch: " + msg, file=sys.stderr)
    sys.exit(1)


# ---- the archive ----------------------------------------------------------------------------

class Weights:
    """The archive's tensors by parameter name; records which ones the model used."""

    def __init__(self, path, dtype):
        try:
            z = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as e:
            fail("%s: not an NPZ archive (%s)" % (path, e))
        if "config.json" not in z.files:
            fail("%s: no config.json (not written by clipx export)" % path)
        self.cfg = json.loads(bytes(z["config.json"]).decode("utf-8"))
        if self.cfg.get("format") != "clipx-npz 1":
            fail("%s: format %r, this script reads 'clipx-npz 1'" % (path, self.cfg.get("format")))
        self.z = z
        self.dtype = dtype
        self.used = set()

    def __call__(self, name):
        if name not in self.z.files:
            fail("the archive has no tensor %s" % name)
        self.used.add(name)
        return torch.from_numpy(self.z[name].astype(np.float32)).to(self.dtype)

    def has(self, name):
        return name in self.z.files

    def unused(self, prefixes):
        return [n for n in self.cfg["tensors"]
                if n not in self.used and any(n.startswith(p + ".") or n == p for p in prefixes)]


# ---- ops as lib/ops computes them -----------------------------------------------------------

LN_EPS = 1e-5
UNIT_EPS = 1e-12


def layer_norm(x, g, b):
    return F.layer_norm(x, (x.shape[-1],), g, b, LN_EPS)


def act_fn(name):
    return torch.relu if name == "relu" else (lambda x: F.gelu(x))  # exact erf form


def unit(x):
    return x / x.norm(dim=-1, keepdim=True).clamp_min(UNIT_EPS)


def mlp(w, prefix, x, nlayers, act, norm):
    """lib/model/mlp.c: linear layers; hidden ones followed by LayerNorm (optional), act."""
    for i in range(nlayers):
        x = F.linear(x, w("%s.fc%d.weight" % (prefix, i)), w("%s.fc%d.bias" % (prefix, i)))
        if i + 1 < nlayers:
            if norm == "layernorm":
                x = layer_norm(x, w("%s.ln%d.weight" % (prefix, i)), w("%s.ln%d.bias" % (prefix, i)))
            x = act(x)
    return x


def block(w, prefix, x, heads, key_mask):
    """lib/ops/block.c: x1 = x + Attn(LN1 x); y = x1 + W_proj GELU(W_fc LN2 x1 + b) + b.
    key_mask (B, T, T) is True where query i may see key j."""
    B, T, D = x.shape
    Dh = D // heads
    h = layer_norm(x, w(prefix + ".ln1.weight"), w(prefix + ".ln1.bias"))
    qkv = F.linear(h, w(prefix + ".attn_qkv.weight"), w(prefix + ".attn_qkv.bias"))
    q, k, v = qkv[..., :D], qkv[..., D:2 * D], qkv[..., 2 * D:]
    q = q.reshape(B, T, heads, Dh).transpose(1, 2)
    k = k.reshape(B, T, heads, Dh).transpose(1, 2)
    v = v.reshape(B, T, heads, Dh).transpose(1, 2)
    s = (q @ k.transpose(-1, -2)) * (1.0 / np.sqrt(np.float32(Dh)))
    s = s.masked_fill(~key_mask[:, None], float("-inf"))
    p = torch.softmax(s, dim=-1)
    p = torch.nan_to_num(p, nan=0.0)  # a query with no visible key: lib/ops writes zeros
    ctx = (p @ v).transpose(1, 2).reshape(B, T, D)
    x1 = x + F.linear(ctx, w(prefix + ".attn_out.weight"), w(prefix + ".attn_out.bias"))
    h = layer_norm(x1, w(prefix + ".ln2.weight"), w(prefix + ".ln2.bias"))
    h = F.gelu(F.linear(h, w(prefix + ".fc.weight"), w(prefix + ".fc.bias")))
    return x1 + F.linear(h, w(prefix + ".proj.weight"), w(prefix + ".proj.bias"))


def blocks(w, prefix, x, layers, heads, key_mask):
    for l in range(layers):
        x = block(w, "%s.blocks%d" % (prefix, l), x, heads, key_mask)
    return x


# ---- towers ---------------------------------------------------------------------------------

def image_tower(w, c, x):
    """x (N, in_dim) as clipx feeds it; returns the features (N, embed_dim), unnormalised."""
    kind, pre = c["type"], c["prefix"]
    C, H, W_ = c["chw"]
    act = act_fn(c["act"])
    if kind == "identity":
        return x
    if kind in ("linear", "mlp"):
        return mlp(w, pre, x, len(c["hidden"]) + 1, act, c["norm"])
    if kind == "cnn":
        h = x.reshape(-1, C, H, W_)
        for i in range(len(c["channels"])):
            h = F.conv2d(h, w("%s.conv%d.weight" % (pre, i)), w("%s.conv%d.bias" % (pre, i)), padding=1)
            h = torch.relu(F.max_pool2d(h, 2))  # floor, as lib/ops/maxpool2d.c
        return mlp(w, pre, h.reshape(h.shape[0], -1), len(c["hidden"]) + 1, act, c["norm"])
    if kind == "vit":
        p = c["patch"]
        img = x.reshape(-1, C, H, W_)
        N = img.shape[0]
        # (N, C, gh, p, gw, p) -> (N, gh, gw, C, p, p): a patch's values in (c, ky, kx) order.
        patches = img.reshape(N, C, H // p, p, W_ // p, p).permute(0, 2, 4, 1, 3, 5)
        patches = patches.reshape(N, (H // p) * (W_ // p), C * p * p)
        pe = F.linear(patches, w(pre + ".patch_embed.weight"))
        cls = w(pre + ".cls").reshape(1, 1, -1).expand(N, 1, -1)
        t = torch.cat([cls, pe], dim=1) + w(pre + ".pos_embed")[None]
        T = t.shape[1]
        mask = torch.ones(N, T, T, dtype=torch.bool)
        t = blocks(w, pre, t, c["layers"], c["heads"], mask)
        t = layer_norm(t, w(pre + ".ln_final.weight"), w(pre + ".ln_final.bias"))
        pooled = t[:, 0] if c["pool"] == "token" else t[:, 1:].mean(dim=1)
        return F.linear(pooled, w(pre + ".proj.weight"))
    fail("image tower type %r is not known to this script" % kind)


def seq_lengths(tokens, eot, pad):
    """lib/model/seq_tower.c seq_length: up to and including the first EOT; without EOT, up to
    the last non-padding token; at least 1."""
    out = []
    for row in tokens.tolist():
        n, last = None, 0
        for i, t in enumerate(row):
            if t == eot:
                n = i + 1
                break
            if t != pad:
                last = i + 1
        out.append(n if n is not None else max(last, 1))
    return torch.tensor(out)


def text_tower(w, c, tokens):
    """tokens (B, L) int; returns (B, embed_dim), unnormalised."""
    pre = c["prefix"]
    if c["type"] == "transformer":
        B, T = tokens.shape
        x = w(pre + ".embed.weight")[tokens] + w(pre + ".pos_embed")[None]
        lengths = seq_lengths(tokens, c["eot_token"], c["pad_token"])
        j = torch.arange(T)
        visible = j[None, None, :] < lengths[:, None, None]  # keys before each length
        if c["causal"]:
            visible = visible & (j[None, None, :] <= j[None, :, None])
        x = blocks(w, pre, x, c["layers"], c["heads"], visible.expand(B, T, T))
        x = layer_norm(x, w(pre + ".ln_final.weight"), w(pre + ".ln_final.bias"))
        if c["pool"] == "token":
            pooled = x[torch.arange(B), lengths - 1]
        else:
            keep = (j[None, :] < lengths[:, None]).to(x.dtype)
            pooled = (x * keep[..., None]).sum(dim=1) / lengths[:, None].to(x.dtype)
        return F.linear(pooled, w(pre + ".proj.weight"))
    # Bag of words: the mean of the non-padding tokens' embeddings, then the projection MLP.
    table = w(pre + ".embed.weight")
    keep = (tokens != c["pad_token"]).to(table.dtype)
    count = keep.sum(dim=1, keepdim=True)
    bag = (table[tokens] * keep[..., None]).sum(dim=1) / count.clamp_min(1.0)
    return mlp(w, pre + ".proj", bag, len(c["hidden"]) + 1, act_fn(c["act"]), "none")


# ---- logits as clipx eval scores them -------------------------------------------------------

def logits_of(w, x):
    cfg = w.cfg
    E = cfg["num_eval_classes"]
    feat = image_tower(w, cfg["image"], x)
    ev = cfg["eval"]
    if ev["mode"] == "retrained":
        # clipx retrain's linear classifier on the stage-1 features: scale x' W^T + b.
        r = cfg["retrain"]
        scale = float(np.float32(r["scale"]))
        xs = unit(feat) if r["normalize"] else feat
        return scale * (xs @ w("retrain.weight").T) + w("retrain.bias"), scale
    if cfg["objective"] == "clip":
        if not w.has("zeroshot.tokens"):
            fail("the archive has no zeroshot.tokens (the run's dataset could not be read at "
                 "export time)")
        tok = torch.from_numpy(w.z["zeroshot.tokens"].astype(np.int64))
        E_, T, L = tok.shape
        emb = unit(text_tower(w, cfg["text"], tok.reshape(E_ * T, L))).reshape(E_, T, -1)
        cls = unit(emb.mean(dim=1))
        return ev["cosine_scale"] * unit(feat) @ unit(cls).T, ev["cosine_scale"]
    if cfg["objective"] != "sl":
        fail("objective %r: clipx eval has no default classifier for it" % cfg["objective"])
    pre = cfg["head"]["prefix"]
    W = w(pre + ".weight")[:E]
    if cfg["head"]["type"] == "linear":
        return F.linear(feat, W, w(pre + ".bias")[:E]), 1.0
    scale = torch.exp(w(pre + ".logit_scale").to(torch.float32)).to(w.dtype)
    return scale * unit(feat) @ unit(W).T, float(scale)


# ---- the dataset's test split ---------------------------------------------------------------

def read_yaml(path):
    try:
        import yaml  # python3-yaml when installed; the small reader below otherwise
        with open(path, encoding="utf-8") as f:
            return yaml.safe_load(f)
    except ImportError:
        pass
    def scalar(v):
        v = v.strip()
        return v[1:-1] if len(v) >= 2 and v[0] == v[-1] and v[0] in "'\"" else v

    def flow_items(body):
        # Split "a: x, b: [1, 2]" at the commas outside brackets.
        parts, depth, cur = [], 0, ""
        for ch in body:
            depth += ch in "[{"
            depth -= ch in "]}"
            if ch == "," and depth == 0:
                parts.append(cur)
                cur = ""
            else:
                cur += ch
        return parts + [cur]

    doc, parent = {}, None
    with open(path, encoding="utf-8") as f:
        for raw in f:
            line = raw.split(" #")[0].rstrip()
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            indented = line[0] in " \t"
            key, _, val = line.strip().partition(":")
            val = val.strip()
            if val.startswith("{") and val.endswith("}"):
                val = {k.strip(): scalar(v) for k, _, v in
                       (p.partition(":") for p in flow_items(val[1:-1]) if ":" in p)}
            else:
                val = scalar(val)
            if indented and parent is not None:
                doc[parent][key.strip()] = val
            elif val == "":
                parent = key.strip()
                doc[parent] = {}
            else:
                parent = None
                doc[key.strip()] = val
    return doc


def open_maybe_gz(path):
    with open(path, "rb") as f:
        data = f.read()
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    return data


def read_array(path):
    data = open_maybe_gz(path)
    if data[:6] == b"\x93NUMPY":
        return np.lib.format.read_array(io.BytesIO(data), allow_pickle=False)
    if len(data) >= 4 and data[0] == 0 and data[1] == 0 and data[2] == 0x08:
        ndim = data[3]
        dims = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
        off = 4 + 4 * ndim
        return np.frombuffer(data, dtype=np.uint8, count=int(np.prod(dims)), offset=off).reshape(dims)
    # Text labels: one integer a line.
    return np.array([int(l) for l in data.decode("utf-8").split()], dtype=np.int64)


def test_split(yaml_path):
    doc = read_yaml(yaml_path)
    test = doc.get("test")
    if not isinstance(test, dict) or "images" not in test:
        fail("%s: no test split with images" % yaml_path)
    base = os.path.dirname(os.path.abspath(yaml_path))

    def resolve(p):
        return p if os.path.isabs(p) else os.path.join(base, p)

    x = read_array(resolve(test["images"]))
    y = read_array(resolve(test["labels"])) if "labels" in test else None
    n = x.shape[0]
    if x.dtype == np.uint8:
        x = x.reshape(n, -1).astype(np.float32) / np.float32(255.0)
    else:
        x = x.reshape(n, -1).astype(np.float32)  # clipx converts other types to float32
    return x, y


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("npz", help="the archive of clipx export")
    ap.add_argument("--data", help="dataset YAML (default: the run's, from config.json)")
    ap.add_argument("--out", help="write the logits (N, classes) as float32 NPY here")
    ap.add_argument("--compare", help="clipx eval --logits output to compare with")
    ap.add_argument("--tol", type=float, default=1e-5,
                    help="largest difference allowed, max |a - b| / max(1, scale) (default 1e-5)")
    ap.add_argument("--float32", action="store_true", help="compute in float32, not float64")
    ap.add_argument("--batch", type=int, default=512, help="test rows per forward")
    a = ap.parse_args()
    torch.set_grad_enabled(False)
    dtype = torch.float32 if a.float32 else torch.float64
    w = Weights(a.npz, dtype)
    cfg = w.cfg
    data = a.data or cfg.get("data")
    if not data:
        fail("the run names no dataset; give --data")
    x, _ = test_split(data)
    if x.shape[1] != cfg["image"]["in_dim"]:
        fail("%s: test samples of %d values, the image tower takes %d" %
             (data, x.shape[1], cfg["image"]["in_dim"]))
    out = []
    for s in range(0, x.shape[0], a.batch):
        part, scale = logits_of(w, torch.from_numpy(x[s:s + a.batch]).to(dtype))
        out.append(part)
    logits = torch.cat(out).numpy()
    # The towers must have read every tensor of theirs: one left over is an op this script lacks.
    if cfg["eval"]["mode"] == "retrained":
        left = w.unused(["image", "retrain"])  # the stage-1 head is not what eval scores with
    else:
        left = w.unused(["image", "text", "head", "logit_scale"])
        left = [n for n in left if not (n == "logit_scale" and cfg["objective"] == "clip")]
    if left:
        fail("tensors the model did not use: " + ", ".join(left))
    if a.out:
        np.save(a.out, logits.astype(np.float32))
    if a.compare:
        ref = np.load(a.compare, allow_pickle=False)
        if ref.shape != logits.shape:
            fail("%s: shape %s, these logits %s" % (a.compare, ref.shape, logits.shape))
        r64 = ref.astype(np.float64)
        d = np.abs(r64 - logits.astype(np.float64))
        diff = float(np.max(d))
        # In units of the classifier's scale: cosine logits are scale * cos, and clipx's float32
        # cos carries about one ulp (6e-8) of error, 6e-6 at scale 100, before the final
        # rounding (7.6e-6 per ulp at 64..128); a linear head's logits are compared as they are.
        scaled = diff / max(1.0, scale)
        agree = float(np.mean(ref.argmax(1) == logits.argmax(1)))
        print("max_abs_diff %.3g  scale %.6g  max_diff_over_scale %.3g  max_abs_logit %.3g  "
              "top1_agreement %.4f  (%d x %d)" % (diff, scale, scaled, float(np.max(np.abs(logits))),
                                                 agree, logits.shape[0], logits.shape[1]))
        if not scaled <= a.tol:
            fail("largest difference %.3g (over the scale %.6g: %.3g) exceeds %.3g" %
                 (diff, scale, scaled, a.tol))
    elif not a.out:
        np.save(sys.stdout.buffer, logits.astype(np.float32))


if __name__ == "__main__":
    main()
