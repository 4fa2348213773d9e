#!/usr/bin/python3
"""Check a `clipx synth` folder with numpy: every NPY file loads with numpy.load and has the
shape and type its dataset.yaml and synth.json promise, labels are in range, captions are
aligned. Used by tests/cli_data_numpy.sh; run with Debian's /usr/bin/python3.
Usage: check_synth_numpy.py DIR"""
import json
import os
import sys

import re

import numpy as np


def fail(msg):
    print("check_synth_numpy: " + msg, file=sys.stderr)
    sys.exit(1)


def scalar(v):
    v = v.strip()
    if v.startswith("["):
        return [int(x) for x in v.strip("[]").split(",") if x.strip()]
    return int(v) if re.fullmatch(r"-?[0-9]+", v) else v


def load_yaml(path):
    """The subset of YAML that `clipx synth` writes: "key: value" and one-line flow maps."""
    out = {}
    with open(path) as f:
        for line in f:
            line = line.split("#", 1)[0].rstrip()
            if not line:
                continue
            key, value = line.split(":", 1)
            value = value.strip()
            if value.startswith("{"):
                # split on commas outside brackets
                parts, depth, cur = [], 0, ""
                for ch in value[1:-1]:
                    depth += ch == "["
                    depth -= ch == "]"
                    if ch == "," and depth == 0:
                        parts.append(cur)
                        cur = ""
                    else:
                        cur += ch
                parts.append(cur)
                out[key] = {k.strip(): scalar(v) for k, v in (p.split(":", 1) for p in parts)}
            else:
                out[key] = scalar(value)
    return out


d = sys.argv[1]
ds = load_yaml(os.path.join(d, "dataset.yaml"))
with open(os.path.join(d, "synth.json")) as f:
    meta = json.load(f)
with open(os.path.join(d, ds["classes"])) as f:
    classes = [line.rstrip("\n") for line in f if line.strip()]
num_classes = len(classes)
num_eval = ds.get("eval_classes", num_classes)
if num_eval != meta["classes"] or num_classes != meta["classes"] + meta["open_classes"]:
    fail("class counts disagree: yaml %d/%d, synth.json %d+%d" % (num_eval, num_classes, meta["classes"], meta["open_classes"]))
want_dtype = np.uint8 if meta["dtype"] == "uint8" else np.float32
for split in ("train", "test"):
    if split not in ds:
        continue
    s = ds[split]
    n, shape = s["n"], tuple(s["shape"])
    x = np.load(os.path.join(d, s["images"]))
    if x.shape != (n,) + shape or x.dtype != want_dtype:
        fail("%s: %s %s, promised %s %s" % (s["images"], x.shape, x.dtype, (n,) + shape, np.dtype(want_dtype)))
    if not x.flags["C_CONTIGUOUS"] or not np.isfinite(x.astype(np.float64)).all():
        fail("%s: not C-ordered finite data" % s["images"])
    y = np.load(os.path.join(d, s["labels"]))
    if y.shape != (n,) or y.dtype != np.int32:
        fail("%s: %s %s, promised (%d,) int32" % (s["labels"], y.shape, y.dtype, n))
    limit = num_classes if split == "train" else num_eval
    if y.min() < 0 or y.max() >= limit:
        fail("%s: labels outside [0, %d)" % (s["labels"], limit))
    with open(os.path.join(d, s["captions"]), encoding="utf-8") as f:
        lines = f.read().split("\n")
    if lines[-1] != "" or len(lines) - 1 != n:
        fail("%s: %d captions for %d samples" % (s["captions"], len(lines) - 1, n))
    if split == "test" and (np.bincount(y, minlength=num_eval) != meta["test_per_class"]).any():
        fail("test split is not balanced")
truth = np.load(os.path.join(d, "train-true-labels.npy"))
counts = {}
with open(os.path.join(d, "train-counts.tsv")) as f:
    for line in f:
        name, c = line.rstrip("\n").split("\t")
        counts[name] = int(c)
names = [c.split("|")[0] for c in classes]
if [counts[nm] for nm in names] != np.bincount(truth, minlength=num_classes).tolist():
    fail("train-counts.tsv disagrees with train-true-labels.npy")
print("check_synth_numpy: %s ok (%d classes, %d training samples)" % (d, num_classes, ds["train"]["n"]))
