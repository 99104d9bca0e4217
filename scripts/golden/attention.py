#!/usr/bin/env python3
"""Writes tests/goldens/attention.json: PyTorch float64 attention with autograd (outputs, lse and the gradients of
q, k, v) on seeded inputs, for a few shapes that cover GQA, the bottom-right causal mask with unequal lengths, a
ragged batch with empty sequences, and a custom scale. The layout is the op's: q (totalQ, Hq, D), k and v
(totalK, Hkv, D), lse (Hq, totalQ); a row that sees no key has out 0, lse +inf (written as null) and zero gradients.

Run with a Python that has torch (Debian's python3-torch): python3 scripts/golden/attention.py
"""
import json
import math
import os

import torch

torch.manual_seed(20251126)
F64 = torch.float64


def t(x):
    return [float(f"{v:.9g}") for v in x.detach().reshape(-1).tolist()]


def sequence(q, k, v, causal, scale):
    """q: (Hq, lq, D), k, v: (Hkv, lk, D) -> out (Hq, lq, D), lse (Hq, lq)."""
    hq, lq, d = q.shape
    hkv, lk, _ = k.shape
    if lk == 0:  # no keys: every row sees nothing
        return q * 0, torch.full((hq, lq), math.inf, dtype=q.dtype)
    k = k.repeat_interleave(hq // hkv, dim=0)
    v = v.repeat_interleave(hq // hkv, dim=0)
    s = torch.matmul(q, k.transpose(-1, -2)) * scale
    i = torch.arange(lq)[:, None]
    j = torch.arange(lk)[None, :]
    visible = (j <= i + lk - lq) if causal else torch.ones(lq, lk, dtype=torch.bool)
    s = s.masked_fill(~visible, -math.inf)
    m = s.amax(dim=-1, keepdim=True).detach()
    m = torch.where(torch.isinf(m), torch.zeros_like(m), m)
    p = torch.exp(s - m)
    l = p.sum(dim=-1, keepdim=True)
    out = torch.matmul(p, v) / l.clamp_min(1e-300)
    lse = torch.where(l[..., 0] > 0, m[..., 0] + torch.log(l[..., 0].clamp_min(1e-300)), torch.full_like(l[..., 0], math.inf))
    return out, lse


def case(lens_q, lens_k, hq, hkv, d, causal, scale=None):
    tq, tk = sum(lens_q), sum(lens_k)
    q = (torch.rand(tq, hq, d, dtype=F64) * 4 - 2).requires_grad_()
    k = (torch.rand(tk, hkv, d, dtype=F64) * 4 - 2).requires_grad_()
    v = (torch.rand(tk, hkv, d, dtype=F64) * 2 - 1).requires_grad_()
    dout = torch.rand(tq, hq, d, dtype=F64) * 2 - 1
    # round the inputs to f32 so the op sees exactly these values
    with torch.no_grad():
        for x in (q, k, v):
            x.copy_(x.float().double())
        dout = dout.float().double()
    sc = scale if scale is not None else 1 / math.sqrt(d)
    outs, lses = [], []
    q0 = k0 = 0
    for lq, lk in zip(lens_q, lens_k):
        o, l = sequence(q[q0:q0 + lq].transpose(0, 1), k[k0:k0 + lk].transpose(0, 1), v[k0:k0 + lk].transpose(0, 1), causal, sc)
        outs.append(o.transpose(0, 1))
        lses.append(l)
        q0 += lq
        k0 += lk
    out = torch.cat(outs, dim=0)
    lse = torch.cat(lses, dim=1)
    out.backward(dout)
    shape = {"lensQ": lens_q, "lensK": lens_k, "hq": hq, "hkv": hkv, "d": d, "causal": causal}
    if scale is not None:
        shape["scale"] = scale
    return {"shape": shape, "q": t(q), "k": t(k), "v": t(v), "dout": t(dout), "out": t(out),
            "lse": [None if math.isinf(x) else float(f"{x:.9g}") for x in lse.reshape(-1).tolist()],
            "dq": t(q.grad), "dk": t(k.grad), "dv": t(v.grad)}


def main():
    cases = [
        case([37], [37], 2, 1, 8, True),
        case([19], [41], 6, 2, 4, True),
        case([30], [11], 3, 3, 5, True),
        case([5, 0, 17, 9], [5, 4, 17, 0], 6, 2, 4, True),
        case([19, 7], [13, 21], 4, 1, 12, False, scale=0.2),
    ]
    path = os.path.join(os.path.dirname(__file__), "..", "..", "tests", "goldens", "attention.json")
    with open(path, "w") as f:
        json.dump({"torch": torch.__version__, "cases": cases}, f, separators=(",", ":"))
    print(f"wrote {os.path.normpath(path)} ({os.path.getsize(path)} bytes)")


if __name__ == "__main__":
    main()
