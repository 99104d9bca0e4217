#!/usr/bin/env python3
"""Writes tests/goldens/stories260k.json from the llama2.c stories260K checkpoint, in plain PyTorch (float64):
a Llama forward written from the llama2.c format's definition (RMSNorm, interleaved RoPE, GQA, SwiGLU, tied head),
greedy continuations of 200 positions from two prompts, the logits of the first prompt's positions, and a Python port
of run.c's tokenizer (encode) over a few strings.

Usage: /usr/bin/python3 scripts/golden/model.py MODEL_DIR   (MODEL_DIR holds model.bin and tok512.bin)
"""
import json
import os
import struct
import sys

import torch

torch.set_default_dtype(torch.float64)
d = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), '..', '..', '..', 'shared', 'models', 'stories260K')
raw = open(os.path.join(d, 'model.bin'), 'rb').read()
dim, hidden, layers, heads, kv_heads, vocab, seq_len = struct.unpack('7i', raw[:28])
shared = vocab > 0
vocab = abs(vocab)
hd = dim // heads
floats = torch.tensor(struct.unpack(f'{(len(raw) - 28) // 4}f', raw[28:]), dtype=torch.float32).double()
at = 0


def take(*shape):
    global at
    n = 1
    for s in shape:
        n *= s
    t = floats[at:at + n].reshape(*shape)
    at += n
    return t


emb = take(vocab, dim)
rms_att = take(layers, dim)
wq = take(layers, heads * hd, dim)
wk = take(layers, kv_heads * hd, dim)
wv = take(layers, kv_heads * hd, dim)
wo = take(layers, dim, heads * hd)
rms_ffn = take(layers, dim)
w1 = take(layers, hidden, dim)
w2 = take(layers, dim, hidden)
w3 = take(layers, hidden, dim)
rms_final = take(dim)
take(seq_len, hd // 2)
take(seq_len, hd // 2)
wcls = emb if shared else take(vocab, dim)


def rmsnorm(x, w):
    return x / torch.sqrt((x * x).mean(-1, keepdim=True) + 1e-5) * w


def rope(x, pos):  # x: (T, H, hd), interleaved pairs, theta 10000
    i = torch.arange(0, hd, 2, dtype=torch.float64)
    freq = 1.0 / (10000.0 ** (i / hd))
    ang = pos[:, None].double() * freq[None, :]
    cos, sin = torch.cos(ang)[:, None, :], torch.sin(ang)[:, None, :]
    a, b = x[..., 0::2], x[..., 1::2]
    out = torch.empty_like(x)
    out[..., 0::2] = a * cos - b * sin
    out[..., 1::2] = a * sin + b * cos
    return out


def forward(ids):
    T = len(ids)
    x = emb[torch.tensor(ids)]
    pos = torch.arange(T)
    mask = torch.full((T, T), float('-inf')).triu(1)
    for l in range(layers):
        h = rmsnorm(x, rms_att[l])
        q = rope((h @ wq[l].T).reshape(T, heads, hd), pos)
        k = rope((h @ wk[l].T).reshape(T, kv_heads, hd), pos)
        v = (h @ wv[l].T).reshape(T, kv_heads, hd)
        g = heads // kv_heads
        k = k.repeat_interleave(g, dim=1)
        v = v.repeat_interleave(g, dim=1)
        s = torch.einsum('thd,shd->hts', q, k) / (hd ** 0.5) + mask
        att = torch.einsum('hts,shd->thd', torch.softmax(s, -1), v).reshape(T, dim)
        x = x + att @ wo[l].T
        h = rmsnorm(x, rms_ffn[l])
        x = x + (torch.nn.functional.silu(h @ w1[l].T) * (h @ w3[l].T)) @ w2[l].T
    return rmsnorm(x, rms_final) @ wcls.T


# run.c's tokenizer
tok = open(os.path.join(d, 'tok512.bin'), 'rb').read()
max_len = struct.unpack('i', tok[:4])[0]
pieces, scores, p = [], [], 4
for _ in range(vocab):
    score, n = struct.unpack('fi', tok[p:p + 8])
    pieces.append(tok[p + 8:p + 8 + n])
    scores.append(score)
    p += 8 + n
lookup = {}
for i, s in enumerate(pieces):
    lookup.setdefault(s, i)


def encode(text, bos=True):
    ids = [1] if bos else []
    if text:
        ids.append(lookup[b' '])
    for ch in text:
        b = ch.encode('utf-8')
        if b in lookup:
            ids.append(lookup[b])
        else:
            ids.extend(x + 3 for x in b)
    while True:
        best, best_i, best_id = float('-inf'), -1, -1
        for i in range(len(ids) - 1):
            m = lookup.get(pieces[ids[i]] + pieces[ids[i + 1]])
            if m is not None and scores[m] > best:
                best, best_i, best_id = scores[m], i, m
        if best_i < 0:
            break
        ids[best_i:best_i + 2] = [best_id]
    return ids


def greedy(prompt, steps):
    ids = list(prompt)
    while len(ids) < steps:
        ids.append(int(forward(ids)[-1].argmax()))
    return ids


texts = ['Once upon a time', 'Lily and Ben went to the park. They saw a big dog!', 'naïve café — 日本 🙂', 'a\nb  c', '']
prompt = encode('Once upon a time')
logits = forward(prompt)
out = {
    'source': 'scripts/golden/model.py (PyTorch %s, float64) on llama2.c stories260K' % torch.__version__,
    'encode': [{'text': t, 'ids': encode(t)} for t in texts],
    'prompt': prompt,
    'promptLogits': [[round(float(v), 6) for v in row] for row in logits],
    'greedy': [{'prompt': prompt, 'ids': greedy(prompt, 200)}, {'prompt': [1], 'ids': greedy([1], 200)}],
}
dst = os.path.join(os.path.dirname(__file__), '..', '..', 'tests', 'goldens', 'stories260k.json')
json.dump(out, open(dst, 'w'))
print('wrote', dst)
