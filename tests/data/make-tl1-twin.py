#!/usr/bin/env python3
"""Writes tiny-trained.tl1.head + .json: what the tl1 test needs, besides tiny-trained.i2_s.gguf,
to rebuild bitnet.cpp's tiny-trained.tl1.gguf byte for byte (the test checks the SHA-256).

The head is the file up to its data section (metadata + tensor table). Non-TL1 tensors equal the
I2_S file's (checked here). TL1 tensors are re-packed by the test from the I2_S-decoded weights
with the tiling bitnet.cpp's converter used (fixtures README: --BM 128,64,256,128
--BK 64,128,64,128 --bm 32,64,32,64 for [M, K] = [256,256] [128,256] [768,256] [256,768]); their
32-byte tails (scale + padding) are stored. Usage: make-tl1-twin.py FIXTURES_MODELS_DIR OUT_DIR
"""
import hashlib, json, struct, sys

def parse(b):
    assert b[:4] == b"GGUF"
    ver, nt, nkv = struct.unpack_from("<IQQ", b, 4)
    o = 24
    def s(o):
        n, = struct.unpack_from("<Q", b, o)
        return b[o + 8:o + 8 + n], o + 8 + n
    size = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}
    def val(t, o):
        if t == 8:
            return s(o)[1]
        if t == 9:
            et, n = struct.unpack_from("<IQ", b, o)
            o += 12
            for _ in range(n):
                o = val(et, o)
            return o
        return o + size[t]
    align = 32
    for _ in range(nkv):
        k, o = s(o)
        t, = struct.unpack_from("<I", b, o)
        o2 = val(t, o + 4)
        if k == b"general.alignment":
            align, = struct.unpack_from("<I", b, o + 4)
        o = o2
    ts = []
    for _ in range(nt):
        name, o = s(o)
        nd, = struct.unpack_from("<I", b, o)
        ne = list(struct.unpack_from("<%dQ" % nd, b, o + 4))
        ty, off = struct.unpack_from("<IQ", b, o + 4 + 8 * nd)
        o += 4 + 8 * nd + 12
        ts.append((name.decode(), ne, ty, off))
    ds = (o + align - 1) // align * align
    return ds, ts

def nbytes(ne, ty):
    n = 1
    for d in ne:
        n *= d
    if ty in (36, 38):
        return n // 4 + 32
    return n * {0: 4, 1: 2}[ty]

src, out = sys.argv[1], sys.argv[2]
tl1 = open(src + "/tiny-trained.tl1.gguf", "rb").read()
i2s = open(src + "/tiny-trained.i2_s.gguf", "rb").read()
ds, ts = parse(tl1)
ds2, ts2 = parse(i2s)
by_name = {t[0]: t for t in ts2}
tiling = {(256, 256): [128, 64, 32], (128, 256): [64, 128, 64],
          (768, 256): [256, 64, 32], (256, 768): [128, 128, 64]}
tensors = []
end = ds
for name, ne, ty, off in ts:
    n = nbytes(ne, ty)
    e = {"name": name, "offset": off, "nbytes": n}
    a = tl1[ds + off:ds + off + n]
    if ty == 38:
        k, m = ne
        e["type"] = "TL1"
        e["tiling"] = tiling[(m, k)]
        e["tail_hex"] = a[-32:].hex()
    else:
        _, ne2, ty2, off2 = by_name[name]
        assert (ne2, ty2) == (ne, ty), name
        assert i2s[ds2 + off2:ds2 + off2 + n] == a, name + " differs from the i2_s file"
        e["type"] = "copy"
    tensors.append(e)
    end = max(end, ds + off + n)
assert end <= len(tl1) and not any(tl1[end:]), "unexpected trailing bytes"
open(out + "/tiny-trained.tl1.head", "wb").write(tl1[:ds])
j = {"file": "tiny-trained.tl1.gguf", "bytes": len(tl1), "data_start": ds,
     "sha256": hashlib.sha256(tl1).hexdigest(), "tensors": tensors}
open(out + "/tiny-trained.tl1.json", "w").write(json.dumps(j, indent=1) + "\n")
print(len(tl1), ds, j["sha256"])
