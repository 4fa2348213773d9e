#!/usr/bin/python3
"""Write tests/fixtures/images: a tiny PNG + JPEG dataset (3 classes, grey and colour images of
different sizes and aspects, a palette PNG) in clipx's three forms of image splits (a list file,
class folders, open_clip's CSV), and the bytes clipx must decode it to.

The expected bytes come from PIL's decoding and an independent exact-fraction implementation of
the resampling clipx documents (shorter side to image_size by area averaging, round half up,
centre crop at floor, ITU-R 601 luma in 16-bit fixed point for grey). PNG bytes must match
exactly; JPEG ones within a small tolerance (libjpeg-turbo versions may differ).

Run with Debian's python3 (python3-pil): /usr/bin/python3 scripts/make_image_fixtures.py
"""
import os
import random
import sys
from fractions import Fraction
from math import floor

from PIL import Image

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures", "images")
SIZE = 8
CLASSES = ["cat", "dog", "fox"]
TINT = {"cat": (200, 120, 40), "dog": (60, 160, 220), "fox": (230, 90, 30)}

# (split, class, file, (w, h), mode): mode L is grey, P a palette PNG, RGB colour.
IMAGES = [
    ("train", "cat", "a.png", (20, 12), "RGB"),
    ("train", "cat", "b.jpg", (9, 15), "L"),
    ("train", "cat", "c.png", (8, 8), "L"),
    ("train", "dog", "d.jpg", (24, 10), "RGB"),
    ("train", "dog", "e.png", (11, 11), "P"),
    ("train", "dog", "f.jpeg", (16, 16), "RGB"),
    ("train", "fox", "g.png", (5, 13), "RGB"),
    ("train", "fox", "h.JPG", (30, 30), "RGB"),
    ("train", "fox", "i.png", (17, 9), "L"),
    ("test", "cat", "t1.jpg", (12, 12), "RGB"),
    ("test", "dog", "t2.png", (10, 14), "RGB"),
    ("test", "fox", "t3.png", (9, 9), "L"),
]
CAPTIONS = {
    "a.png": 'a "ginger" cat, sitting',
    "b.jpg": "a grey cat",
    "c.png": "a small cat",
    "d.jpg": "a dog in the park",
    "e.png": "a dog with a ball",
    "f.jpeg": "a sleepy dog",
    "g.png": "a fox at dusk",
    "h.JPG": "a red fox",
    "i.png": "a fox in the snow",
}


def make_image(rng, cls, size, mode):
    w, h = size
    tr, tg, tb = TINT[cls]
    im = Image.new("RGB", size)
    px = im.load()
    for y in range(h):
        for x in range(w):
            f = (x + y) / (w + h)
            px[x, y] = tuple(
                max(0, min(255, int(t * (0.5 + f)) + rng.randint(-40, 40))) for t in (tr, tg, tb)
            )
    if mode == "L":
        return im.convert("L")
    if mode == "P":
        return im.convert("P", palette=Image.ADAPTIVE, colors=16)
    return im


def fit(rgb, w, h, channels):
    """The documented resampling on (h, w) rows of (r, g, b) tuples, to (channels, SIZE, SIZE)."""
    if channels == 1:
        src = [[((19595 * r + 38470 * g + 7471 * b + 32768) >> 16,) for r, g, b in row] for row in rgb]
    else:
        src = rgb
    if w <= h:
        w1, h1 = SIZE, floor(Fraction(h * SIZE, w) + Fraction(1, 2))
    else:
        h1, w1 = SIZE, floor(Fraction(w * SIZE, h) + Fraction(1, 2))
    ox, oy = (w1 - SIZE) // 2, (h1 - SIZE) // 2

    def cover(n0, n1, i):
        a, b = Fraction(i * n0, n1), Fraction((i + 1) * n0, n1)
        out = []
        for j in range(floor(a), min(n0, -(-b.numerator // b.denominator))):
            o = min(b, j + 1) - max(a, j)
            if o > 0:
                out.append((j, o))
        return out

    area = Fraction(w, w1) * Fraction(h, h1)
    out = [[[0] * SIZE for _ in range(SIZE)] for _ in range(channels)]
    for ky in range(SIZE):
        cy = cover(h, h1, oy + ky)
        for kx in range(SIZE):
            cx = cover(w, w1, ox + kx)
            for c in range(channels):
                s = sum(wy * wx * src[j][i][c] for j, wy in cy for i, wx in cx)
                out[c][ky][kx] = floor(s / area + Fraction(1, 2))
    return bytes(v for plane in out for row in plane for v in row)


def main():
    rng = random.Random(19)
    for cls in CLASSES:
        for split in ("train", "test"):
            os.makedirs(os.path.join(OUT, split, cls), exist_ok=True)
    expected = {("train", 3): b"", ("train", 1): b"", ("test", 3): b""}
    rows = {"train": [], "test": []}
    for split, cls, name, size, mode in IMAGES:
        im = make_image(rng, cls, size, mode)
        rel = f"{split}/{cls}/{name}"
        path = os.path.join(OUT, rel)
        if name.lower().endswith(".png"):
            im.save(path, format="PNG")
        else:
            im.save(path, format="JPEG", quality=85)
        rows[split].append((rel, CLASSES.index(cls), CAPTIONS.get(name, "")))
        back = Image.open(path).convert("RGB")
        w, h = back.size
        px = back.load()
        rgb = [[px[x, y] for x in range(w)] for y in range(h)]
        for (sp, ch) in expected:
            if sp == split:
                expected[(sp, ch)] += fit(rgb, w, h, ch)
    # Folder order (ImageFolder's): classes sorted, files sorted by name within each; the list
    # and the CSV follow it so all three forms hold the same samples in the same order.
    for split in rows:
        rows[split].sort(key=lambda r: (r[1], r[0].rsplit("/", 1)[1]))
    for split in ("train", "test"):
        with open(os.path.join(OUT, f"{split}.txt"), "w") as f:
            for rel, y, _ in rows[split]:
                f.write(f"{rel} {y}\n")
    with open(os.path.join(OUT, "train.csv"), "w") as f:
        f.write("filepath\ttitle\tlabel\n")
        for rel, y, cap in rows["train"]:
            q = '"' + cap.replace('"', '""') + '"' if '"' in cap else cap
            f.write(f"{rel}\t{q}\t{y}\n")
    with open(os.path.join(OUT, "train-comma.csv"), "w") as f:
        f.write("label,filepath,caption\n")
        for rel, y, cap in rows["train"]:
            f.write(f'{y},{rel},"{cap.replace(chr(34), chr(34) * 2)}"\n')
    # No label column: each class comes from the class its caption names.
    with open(os.path.join(OUT, "train-nolabel.csv"), "w") as f:
        f.write("filepath\ttitle\n")
        for rel, y, cap in rows["train"]:
            assert CLASSES[y] in cap.split() or CLASSES[y] + "," in cap.split()
            q = '"' + cap.replace('"', '""') + '"' if '"' in cap else cap
            f.write(f"{rel}\t{q}\n")
    with open(os.path.join(OUT, "train-captions.txt"), "w") as f:
        for _, _, cap in rows["train"]:
            f.write(cap + "\n")
    with open(os.path.join(OUT, "classes.txt"), "w") as f:
        f.write("\n".join(CLASSES) + "\n")
    test = "test: {list: test.txt, image_size: %d}\n" % SIZE
    forms = {
        "list": "train: {list: train.txt, root: ., image_size: %d, channels: 3}\n" % SIZE,
        "folder": "train: {folder: train, image_size: %d, captions: train-captions.txt}\n" % SIZE,
        "csv": "train: {csv: train.csv, image_size: %d}\n" % SIZE,
        "csv-comma": 'train: {csv: train-comma.csv, csv_separator: ",", csv_caption_key: caption, '
        "image_size: %d}\n" % SIZE,
        "csv-nolabel": "train: {csv: train-nolabel.csv, image_size: %d}\n" % SIZE,
        "grey": "train: {folder: train, image_size: %d, channels: 1}\n" % SIZE,
    }
    for form, train in forms.items():
        with open(os.path.join(OUT, f"{form}.yaml"), "w") as f:
            f.write(f"name: pets-{form}\nclasses: classes.txt\n{train}{test}")
    for (split, ch), data in expected.items():
        with open(os.path.join(OUT, f"expected-{split}-c{ch}.u8"), "wb") as f:
            f.write(data)
    # Which samples are JPEGs (compared within a tolerance): one index a line.
    with open(os.path.join(OUT, "jpeg-rows.txt"), "w") as f:
        for split in ("train", "test"):
            for i, (rel, _, _) in enumerate(rows[split]):
                if not rel.lower().endswith(".png"):
                    f.write(f"{split} {i}\n")
    print(f"wrote {OUT}", file=sys.stderr)


if __name__ == "__main__":
    main()
