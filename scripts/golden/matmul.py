#!/usr/bin/env python3
"""Writes tests/goldens/matmul.json: torch.matmul on small seeded inputs, every layout, batched and broadcast,
alpha/beta, and f16/bf16 inputs. Run with Debian's python3-torch from the package root:

    python3 scripts/golden/matmul.py

Each case stores its inputs as stored (a: (M, K) or (K, M) when transA, optionally batched; b likewise), the
options, and torch's result as f32 values. f16/bf16 inputs are stored as the f32 values of the rounded halves,
and torch multiplies them in f32 (what qwenlong computes: f32 accumulation of the exact half values).
"""
import json
import os

import torch

DTYPES = {"f32": torch.float32, "f16": torch.float16, "bf16": torch.bfloat16}


def values(t):
    # 9 significant digits give back every f32 exactly, in about half the characters of a double's repr.
    return [float("%.9g" % x) for x in t.flatten().tolist()]


def stored(gen, batch, rows, cols, dtype):
    shape = (rows, cols) if batch is None else (batch, rows, cols)
    x = torch.rand(shape, generator=gen, dtype=torch.float64) * 2 - 1
    return x.to(DTYPES[dtype]).to(torch.float32)


def case(gen, name, m, n, k, trans_a=False, trans_b=False, batch_a=None, batch_b=None, alpha=1.0, beta=0.0, dtype="f32"):
    a = stored(gen, batch_a, k if trans_a else m, m if trans_a else k, dtype)
    b = stored(gen, batch_b, n if trans_b else k, k if trans_b else n, dtype)
    op_a = a.transpose(-1, -2) if trans_a else a
    op_b = b.transpose(-1, -2) if trans_b else b
    product = torch.matmul(op_a, op_b)
    out = {"name": name, "m": m, "n": n, "k": k, "transA": trans_a, "transB": trans_b, "alpha": alpha, "beta": beta,
           "dtype": dtype, "aShape": list(a.shape), "bShape": list(b.shape),
           "a": values(a), "b": values(b)}
    if beta != 0.0:
        c = stored(gen, None if product.dim() == 2 else product.shape[0], m, n, "f32")
        out["c"] = values(c)
        result = alpha * product + beta * c
    else:
        result = alpha * product
    out["expected"] = values(result)
    out["expectedShape"] = list(result.shape)
    return out


def main():
    gen = torch.Generator().manual_seed(20251201)
    cases = [
        case(gen, "NN 7x65x63", 7, 65, 63),
        case(gen, "NT 33x17x129", 33, 17, 129, trans_b=True),
        case(gen, "TN 65x7x33 alpha beta", 65, 7, 33, trans_a=True, alpha=0.5, beta=-1.5),
        case(gen, "TT 13x29x31", 13, 29, 31, trans_a=True, trans_b=True),
        case(gen, "NN 1x1x1", 1, 1, 1),
        case(gen, "batched NN 3x(9x11x13)", 9, 11, 13, batch_a=3, batch_b=3),
        case(gen, "batched TN, b broadcast", 10, 6, 21, trans_a=True, batch_a=4),
        case(gen, "batched NT, a broadcast, beta", 5, 18, 12, trans_b=True, batch_b=2, alpha=2.0, beta=0.25),
        case(gen, "bf16 NN 16x24x40", 16, 24, 40, dtype="bf16"),
        case(gen, "f16 NT 12x20x36", 12, 20, 36, trans_b=True, dtype="f16"),
        case(gen, "bf16 TN 70x9x100", 70, 9, 100, trans_a=True, dtype="bf16"),
    ]
    doc = {"generator": "scripts/golden/matmul.py", "torch": torch.__version__, "cases": cases}
    path = os.path.join(os.path.dirname(__file__), "..", "..", "tests", "goldens", "matmul.json")
    with open(path, "w") as f:
        json.dump(doc, f, separators=(",", ":"))
        f.write("\n")
    print(f"wrote {os.path.normpath(path)} ({os.path.getsize(path)} bytes, {len(cases)} cases)")


if __name__ == "__main__":
    main()
