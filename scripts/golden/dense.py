#!/usr/bin/env python3
"""Writes tests/goldens/dense.json: PyTorch results for the dense layers (rmsNorm, swiglu, rope, embedding,
adamw, clipGrad), in float64 from seeded inputs, so the tests compare against an independent implementation.

Run with a Python that has torch (Debian's python3-torch): python3 scripts/golden/dense.py
"""
import json
import math
import os

import torch

torch.manual_seed(20251125)
F64 = torch.float64


def t(x):
    return [round(float(v), 12) for v in x.detach().reshape(-1).tolist()]


def rmsnorm_case(rows, cols, eps):
    x = torch.randn(rows, cols, dtype=F64, requires_grad=True)
    w = torch.randn(cols, dtype=F64, requires_grad=True)
    dy = torch.randn(rows, cols, dtype=F64)
    y = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w
    y.backward(dy)
    return {"rows": rows, "cols": cols, "eps": eps, "x": t(x), "w": t(w), "dy": t(dy), "y": t(y), "dx": t(x.grad), "dw": t(w.grad)}


def swiglu_case(n):
    g = torch.randn(n, dtype=F64, requires_grad=True) * 3
    g.retain_grad()
    u = torch.randn(n, dtype=F64, requires_grad=True)
    d = torch.randn(n, dtype=F64)
    out = torch.nn.functional.silu(g) * u
    out.backward(d)
    return {"gate": t(g), "up": t(u), "dout": t(d), "out": t(out), "dgate": t(g.grad), "dup": t(u.grad)}


def rope_half(x, pos, theta, rot):
    # Hugging Face's rotate_half convention on the first `rot` dims
    inv = 1.0 / (theta ** (torch.arange(0, rot, 2, dtype=F64) / rot))
    ang = pos[:, None].to(F64) * inv[None, :]
    emb = torch.cat([ang, ang], dim=-1)
    cos, sin = emb.cos()[:, None, :], emb.sin()[:, None, :]
    xr, rest = x[..., :rot], x[..., rot:]
    x1, x2 = xr[..., : rot // 2], xr[..., rot // 2 :]
    rotated = torch.cat([-x2, x1], dim=-1)
    return torch.cat([xr * cos + rotated * sin, rest], dim=-1)


def rope_interleaved(x, pos, theta, rot):
    # Meta's convention: consecutive pairs as complex numbers times e^{i angle}
    inv = 1.0 / (theta ** (torch.arange(0, rot, 2, dtype=F64) / rot))
    ang = pos[:, None].to(F64) * inv[None, :]
    xr, rest = x[..., :rot], x[..., rot:]
    xc = torch.view_as_complex(xr.reshape(*xr.shape[:-1], rot // 2, 2).contiguous())
    out = torch.view_as_real(xc * torch.polar(torch.ones_like(ang), ang)[:, None, :]).reshape(xr.shape)
    return torch.cat([out, rest], dim=-1)


def rope_case(tokens, heads, dim, rot, theta, convention, offset):
    x = torch.randn(tokens, heads, dim, dtype=F64)
    pos = torch.arange(tokens) + offset
    f = rope_half if convention == "half" else rope_interleaved
    return {"tokens": tokens, "heads": heads, "dim": dim, "rotaryDim": rot, "theta": theta, "convention": convention, "offset": offset,
            "x": t(x), "out": t(f(x, pos, theta, rot))}


def embedding_case(vocab, dim, tokens):
    table = torch.randn(vocab, dim, dtype=F64, requires_grad=True)
    ids = torch.randint(0, vocab, (tokens,))
    ids[0] = ids[-1]  # a repeated id, so the scatter really adds
    dout = torch.randn(tokens, dim, dtype=F64)
    out = torch.nn.functional.embedding(ids, table)
    out.backward(dout)
    return {"vocab": vocab, "dim": dim, "ids": ids.tolist(), "table": t(table), "dout": t(dout), "out": t(out), "dtable": t(table.grad)}


def adamw_case(n, steps, lr, betas, eps, wd):
    # float32, as the op keeps f32 master weights and moments
    p = torch.randn(n, dtype=torch.float32)
    start = p.clone()
    p = torch.nn.Parameter(p)
    opt = torch.optim.AdamW([p], lr=lr, betas=betas, eps=eps, weight_decay=wd)
    grads = []
    for _ in range(steps):
        g = torch.randn(n, dtype=torch.float32)
        grads.append(t(g))
        p.grad = g.clone()
        opt.step()
    st = opt.state[p]
    return {"n": n, "steps": steps, "lr": lr, "beta1": betas[0], "beta2": betas[1], "eps": eps, "weightDecay": wd,
            "params": t(start), "grads": grads, "final": t(p), "m": t(st["exp_avg"]), "v": t(st["exp_avg_sq"])}


def clip_case(sizes, max_norm, scale):
    ts = [torch.randn(s, dtype=F64) * scale for s in sizes]
    before = [t(x) for x in ts]
    params = []
    for x in ts:
        p = torch.nn.Parameter(torch.zeros_like(x))
        p.grad = x.clone()
        params.append(p)
    norm = torch.nn.utils.clip_grad_norm_(params, max_norm)
    return {"sizes": sizes, "maxNorm": max_norm, "tensors": before, "norm": float(norm), "after": [t(p.grad) for p in params]}


golden = {
    "torch": torch.__version__,
    "rmsnorm": [rmsnorm_case(3, 17, 1e-5), rmsnorm_case(5, 64, 1e-6)],
    "swiglu": [swiglu_case(257)],
    "rope": [rope_case(5, 3, 16, 16, 10000.0, "half", 0), rope_case(4, 2, 18, 12, 1e6, "half", 100),
             rope_case(5, 3, 16, 16, 10000.0, "interleaved", 7), rope_case(3, 1, 10, 8, 500000.0, "interleaved", 131000)],
    "embedding": [embedding_case(11, 7, 23)],
    "adamw": [adamw_case(97, 10, 1e-2, (0.9, 0.999), 1e-8, 0.1), adamw_case(33, 10, 3e-3, (0.8, 0.95), 1e-6, 0.0)],
    "clip": [clip_case([10, 33, 1], 1.0, 1.0), clip_case([5, 6], 100.0, 1.0)],
}
out = os.path.join(os.path.dirname(__file__), "..", "..", "tests", "goldens", "dense.json")
with open(out, "w") as f:
    json.dump(golden, f, separators=(",", ":"))
print(f"wrote {os.path.relpath(out)} ({os.path.getsize(out)} bytes) with torch {torch.__version__}")
