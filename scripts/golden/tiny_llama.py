#!/usr/bin/env python3
"""Writes tests/goldens/tiny_llama.json: a tiny random Llama-style decoder (GQA 4:2, interleaved RoPE, SwiGLU, tied
head) over two packed sequences, in float64 PyTorch with autograd: logits, and the gradient of every parameter for
the loss sum(logits * R) with a fixed random R (so dLogits = R).

Usage: /usr/bin/python3 scripts/golden/tiny_llama.py
"""
import json
import os

import torch

torch.manual_seed(1234)
torch.set_default_dtype(torch.float64)
V, dim, hidden, layers, heads, kv, hd = 40, 32, 48, 2, 4, 2, 8
lens = [7, 12]
T = sum(lens)


def param(*shape, scale=0.2):
    return (torch.randn(*shape) * scale).float().double().requires_grad_()  # values exact in f32


P = {'model.embed_tokens.weight': param(V, dim, scale=0.5), 'model.norm.weight': (1 + param(dim, scale=0.1)).detach().requires_grad_()}
for l in range(layers):
    p = f'model.layers.{l}.'
    P[p + 'input_layernorm.weight'] = (1 + param(dim, scale=0.1)).detach().requires_grad_()
    P[p + 'post_attention_layernorm.weight'] = (1 + param(dim, scale=0.1)).detach().requires_grad_()
    P[p + 'self_attn.q_proj.weight'] = param(heads * hd, dim)
    P[p + 'self_attn.k_proj.weight'] = param(kv * hd, dim)
    P[p + 'self_attn.v_proj.weight'] = param(kv * hd, dim)
    P[p + 'self_attn.o_proj.weight'] = param(dim, heads * hd)
    P[p + 'mlp.gate_proj.weight'] = param(hidden, dim)
    P[p + 'mlp.up_proj.weight'] = param(hidden, dim)
    P[p + 'mlp.down_proj.weight'] = param(dim, hidden)
ids = torch.randint(0, V, (T,))
R = torch.randn(T, V).float().double()


def rmsnorm(x, w):
    return x / torch.sqrt((x * x).mean(-1, keepdim=True) + 1e-5) * w


def rope(x, pos):
    i = torch.arange(0, hd, 2, dtype=torch.float64)
    ang = pos[:, None].double() / (10000.0 ** (i / hd))[None, :]
    cos, sin = torch.cos(ang)[:, None, :], torch.sin(ang)[:, None, :]
    a, b = x[..., 0::2], x[..., 1::2]
    return torch.stack([a * cos - b * sin, a * sin + b * cos], -1).reshape(x.shape)


pos = torch.cat([torch.arange(n) for n in lens])
seq = torch.cat([torch.full((n,), i) for i, n in enumerate(lens)])
allowed = (seq[:, None] == seq[None, :]) & (torch.arange(T)[None, :] <= torch.arange(T)[:, None])
x = P['model.embed_tokens.weight'][ids]
for l in range(layers):
    p = f'model.layers.{l}.'
    h = rmsnorm(x, P[p + 'input_layernorm.weight'])
    q = rope((h @ P[p + 'self_attn.q_proj.weight'].T).reshape(T, heads, hd), pos)
    k = rope((h @ P[p + 'self_attn.k_proj.weight'].T).reshape(T, kv, hd), pos).repeat_interleave(heads // kv, 1)
    v = (h @ P[p + 'self_attn.v_proj.weight'].T).reshape(T, kv, hd).repeat_interleave(heads // kv, 1)
    s = torch.einsum('thd,shd->hts', q, k) / hd ** 0.5
    s = s.masked_fill(~allowed[None], float('-inf'))
    att = torch.einsum('hts,shd->thd', torch.softmax(s, -1), v).reshape(T, heads * hd)
    x = x + att @ P[p + 'self_attn.o_proj.weight'].T
    h = rmsnorm(x, P[p + 'post_attention_layernorm.weight'])
    x = x + (torch.nn.functional.silu(h @ P[p + 'mlp.gate_proj.weight'].T) * (h @ P[p + 'mlp.up_proj.weight'].T)) @ P[p + 'mlp.down_proj.weight'].T
logits = rmsnorm(x, P['model.norm.weight']) @ P['model.embed_tokens.weight'].T
(logits * R).sum().backward()
# Five AdamW steps on the mean cross-entropy of next tokens (targets: a fixed random sequence), from the same start.
targets = torch.randint(0, V, (T,))
start = {n: t.detach().clone() for n, t in P.items()}


def forward_logits(P):
    x = P['model.embed_tokens.weight'][ids]
    for l in range(layers):
        p = f'model.layers.{l}.'
        h = rmsnorm(x, P[p + 'input_layernorm.weight'])
        q = rope((h @ P[p + 'self_attn.q_proj.weight'].T).reshape(T, heads, hd), pos)
        k = rope((h @ P[p + 'self_attn.k_proj.weight'].T).reshape(T, kv, hd), pos).repeat_interleave(heads // kv, 1)
        v = (h @ P[p + 'self_attn.v_proj.weight'].T).reshape(T, kv, hd).repeat_interleave(heads // kv, 1)
        s = (torch.einsum('thd,shd->hts', q, k) / hd ** 0.5).masked_fill(~allowed[None], float('-inf'))
        x = x + torch.einsum('hts,shd->thd', torch.softmax(s, -1), v).reshape(T, heads * hd) @ P[p + 'self_attn.o_proj.weight'].T
        h = rmsnorm(x, P[p + 'post_attention_layernorm.weight'])
        x = x + (torch.nn.functional.silu(h @ P[p + 'mlp.gate_proj.weight'].T) * (h @ P[p + 'mlp.up_proj.weight'].T)) @ P[p + 'mlp.down_proj.weight'].T
    return rmsnorm(x, P['model.norm.weight']) @ P['model.embed_tokens.weight'].T


Q = {n: t.clone().requires_grad_() for n, t in start.items()}
opt = torch.optim.AdamW(list(Q.values()), lr=1e-2, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01)
adam_losses = []
for _ in range(5):
    opt.zero_grad()
    loss = torch.nn.functional.cross_entropy(forward_logits(Q), targets)
    adam_losses.append(float(loss))
    loss.backward()
    opt.step()

flat = lambda t: [float('%.9g' % v) for v in t.detach().reshape(-1)]
out = {
    'source': 'scripts/golden/tiny_llama.py (PyTorch %s, float64 autograd)' % torch.__version__,
    'config': {'vocabSize': V, 'dim': dim, 'hiddenDim': hidden, 'layers': layers, 'heads': heads, 'kvHeads': kv, 'headDim': hd},
    'lens': lens, 'ids': [int(i) for i in ids], 'R': flat(R), 'logits': flat(logits),
    'params': {n: {'shape': list(t.shape), 'data': flat(t)} for n, t in P.items()},
    'grads': {n: flat(t.grad) for n, t in P.items()},
    'targets': [int(i) for i in targets], 'adamLosses': adam_losses,
}
dst = os.path.join(os.path.dirname(__file__), '..', '..', 'tests', 'goldens', 'tiny_llama.json')
json.dump(out, open(dst, 'w'))
print('wrote', dst)
