#!/usr/bin/python3
"""Write the small data fixtures of tests/fixtures/data with numpy (the reference NPY writer)
and gzip, so the C readers are checked against files they did not write themselves.
Run with Debian's interpreter: /usr/bin/python3 scripts/make_data_fixtures.py [OUTDIR]"""
import gzip
import io
import os
import struct
import sys

import numpy as np

out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures", "data")
os.makedirs(out, exist_ok=True)


def write(name, data):
    with open(os.path.join(out, name), "wb") as f:
        f.write(data)


def gz(data):
    # mtime=0 keeps the bytes reproducible
    buf = io.BytesIO()
    with gzip.GzipFile(fileobj=buf, mode="wb", mtime=0) as g:
        g.write(data)
    return buf.getvalue()


def npy(a, version=None):
    buf = io.BytesIO()
    np.lib.format.write_array(buf, a, version=version, allow_pickle=False)
    return buf.getvalue()


# Six 4x3 images whose pixel (i, r, c) = 10 * i + 3 * r + c, and labels 0..2.
images = np.array([[[10 * i + 3 * r + c for c in range(3)] for r in range(4)] for i in range(6)], np.uint8)
labels = np.array([0, 1, 2, 0, 1, 2], np.uint8)
idx3 = struct.pack(">BBBB", 0, 0, 8, 3) + struct.pack(">III", 6, 4, 3) + images.tobytes()
idx1 = struct.pack(">BBBB", 0, 0, 8, 1) + struct.pack(">I", 6) + labels.tobytes()
write("tiny-images-idx3-ubyte", idx3)
write("tiny-images-idx3-ubyte.gz", gz(idx3))
write("tiny-labels-idx1-ubyte", idx1)
write("tiny-labels-idx1-ubyte.gz", gz(idx1))

feats = (np.arange(30, dtype=np.float64).reshape(6, 5) / 4.0 - 2.0)
write("u8-images.npy", npy(images))
write("u8-images.npy.gz", gz(npy(images)))
write("f32-features.npy", npy(feats.astype("<f4")))
write("f64-features-v2.npy", npy(feats.astype("<f8"), version=(2, 0)))
write("i32-labels.npy", npy(labels.astype("<i4")))
write("i64-labels.npy", npy(labels.astype("<i8")))
write("u8-labels.npy", npy(labels))
write("fortran-features.npy", npy(np.asfortranarray(feats.astype("<f4"))))
write("bigendian-features.npy", npy(feats.astype(">f4")))
write("complex-features.npy", npy(feats.astype(np.complex64)))
write("bool-labels.npy", npy(labels.astype(bool)))
write("f32-labels.npy", npy(labels.astype("<f4")))

write("tiny-classes.txt", b"zero|nought|!not zero\none|single one\ntwo|pair|couple\n")
write("tiny-templates.txt", b"a photo of a {}.\n{} again, a {}\n")
write("tiny-labels.txt", b"0\n1\n2\n0\n1\n2\n")
write("tiny-captions.txt", "a zero here\none single one\na pair of things\nnought caf\u00e9\none\ncouple and zero\n".encode())
write("tiny.yaml", b"""name: tiny
classes: tiny-classes.txt
templates: tiny-templates.txt
train: {images: tiny-images-idx3-ubyte.gz, labels: tiny-labels-idx1-ubyte.gz, captions: tiny-captions.txt, n: 6, shape: [4, 3]}
test:
  images: f32-features.npy
  labels: tiny-labels.txt
""")
print("wrote fixtures to", out)
