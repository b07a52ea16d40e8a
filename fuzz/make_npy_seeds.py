#!/usr/bin/env python3
"""Writes the .npy seed corpus (fuzz/corpus/npy/): files laid out byte for
byte as numpy.save writes them (version 1.0, header padded with spaces to a
64-byte boundary and ended by a newline; 2.0/3.0 with a 4-byte length), one of
each supported dtype and shape kind, plus the malformed files the reader must
reject with a clear message. Needs only the standard library:
    python3 fuzz/make_npy_seeds.py"""
import os
import struct

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus", "npy")


def npy(descr, shape, data, fortran=False, version=(1, 0), header=None):
    if header is None:
        dims = ", ".join(str(e) for e in shape) + ("," if len(shape) == 1 else "")
        header = "{'descr': '%s', 'fortran_order': %s, 'shape': (%s), }" % (
            descr, "True" if fortran else "False", dims)
    prefix = 10 if version[0] == 1 else 12
    total = (prefix + len(header) + 1 + 63) // 64 * 64
    header = header + " " * (total - prefix - len(header) - 1) + "\n"
    head = b"\x93NUMPY" + bytes(version)
    head += struct.pack("<H" if version[0] == 1 else "<I", len(header))
    return head + header.encode("latin-1") + data


def values(fmt, n):
    return b"".join(struct.pack("<" + fmt, (i * 7) % 5 - 2) for i in range(n))


seeds = {
    # Every supported dtype, the shapes `xent check` sees.
    "f4_3x5.npy": npy("<f4", (3, 5), values("f", 15)),
    "f8_3x5.npy": npy("<f8", (3, 5), values("d", 15)),
    "i4_3.npy": npy("<i4", (3,), values("i", 3)),
    "i8_3.npy": npy("<i8", (3,), struct.pack("<3q", 1, 3, 2)),
    "b1_4.npy": npy("|b1", (4,), b"\x00\x01\x01\x00"),
    "f4_2x3x4.npy": npy("<f4", (2, 3, 4), values("f", 24)),
    "f4_scalar.npy": npy("<f4", (), values("f", 1)),
    "f4_empty_0x5.npy": npy("<f4", (0, 5), b""),
    "f4_v2.npy": npy("<f4", (2,), values("f", 2), version=(2, 0)),
    "f4_v3.npy": npy("<f4", (2,), values("f", 2), version=(3, 0)),
    "i8_python2_long.npy": npy("<i8", (2,), values("q", 2),
                               header="{'descr': '<i8', 'fortran_order': False, 'shape': (2L,), }"),
    "f4_double_quotes.npy": npy("<f4", (1,), values("f", 1),
                                header='{"descr": "<f4", "fortran_order": False, "shape": (1,)}'),
    # Malformed: each must be an npy_error naming the problem.
    "bad_magic.npy": b"\x93NUMPX\x01\x00" + npy("<f4", (1,), values("f", 1))[8:],
    "bad_version.npy": b"\x93NUMPY\x04\x00" + npy("<f4", (1,), values("f", 1))[8:],
    "truncated_header.npy": npy("<f4", (3,), values("f", 3))[:40],
    "truncated_data.npy": npy("<f4", (3,), values("f", 3))[:-2],
    "trailing_bytes.npy": npy("<f4", (1,), values("f", 2)),
    "big_endian.npy": npy(">f4", (2,), values("f", 2)),
    "object.npy": npy("|O", (1,), b"\x00" * 8),
    "fortran.npy": npy("<f4", (2, 2), values("f", 4), fortran=True),
    "structured.npy": npy("", (1,), b"\x00" * 8,
                          header="{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (1,), }"),
    "negative_extent.npy": npy("<f4", (-1,), b""),
    "too_large.npy": npy("<f4", (4294967296, 4294967296, 4294967296), b""),
    "empty_but_too_large.npy": npy("<f4", (0, 4611686018427387904, 4611686018427387904), b""),
    "integer_overflow.npy": npy("<f4", (1,), b"",
                                header="{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999999999999\n,), }"),
    "duplicate_key.npy": npy("<f4", (1,), values("f", 1),
                             header="{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': (1,)}"),
    "not_a_dict.npy": npy("<f4", (1,), b"", header="(1, 2)"),
    "nested.npy": npy("<f4", (1,), b"", header="{'shape': " + "(" * 40 + "}"),
}

os.makedirs(OUT, exist_ok=True)
for name, data in seeds.items():
    with open(os.path.join(OUT, name), "wb") as f:
        f.write(data)
print("wrote %d files to %s" % (len(seeds), OUT))
