#!/usr/bin/env python3
"""Writes tests/goldens/tiny_{llama,qwen3,qwen2}.json: tiny random decoders in float64 PyTorch with autograd, over two
packed sequences (block-diagonal causal attention, positions restarting per sequence):
  llama: GQA 4:2, interleaved RoPE pairs (Meta / llama2.c), tied head, eps 1e-5, theta 1e4;
  qwen3: GQA 4:2, RMSNorm of each q and k head before RoPE, Hugging Face (i, i + D/2) pairs, tied head, eps 1e-6, theta 1e6;
  qwen2: GQA 4:2, q/k/v biases, (i, i + D/2) pairs, separate LM head, eps 1e-6, theta 1e6.
Each file: the config, weights (exact f32 values), ids, logits, every parameter's gradient of sum(logits * R) for a
fixed random R, and the losses of five torch.optim.AdamW steps on the mean next-token cross-entropy.

Usage: /usr/bin/python3 scripts/golden/tiny_llama.py
"""
import json
import os

import torch

torch.set_default_dtype(torch.float64)
V, dim, hidden, layers, heads, kv, hd = 40, 16, 32, 2, 4, 2, 4
lens = [7, 12]
T = sum(lens)
VARIANTS = {
    'llama': dict(rope='interleaved', eps=1e-5, theta=1e4, tied=True, qk_norm=False, bias=False),
    'qwen3': dict(rope='half', eps=1e-6, theta=1e6, tied=True, qk_norm=True, bias=False),
    'qwen2': dict(rope='half', eps=1e-6, theta=1e6, tied=False, qk_norm=False, bias=True),
}


def make(variant):
    o = VARIANTS[variant]
    torch.manual_seed(1234)

    def param(*shape, scale=0.2, one=False):
        t = (torch.randn(*shape) * scale).float().double()
        return (t + 1 if one else t).requires_grad_()

    P = {'model.embed_tokens.weight': param(V, dim, scale=0.5), 'model.norm.weight': param(dim, scale=0.1, one=True)}
    for l in range(layers):
        p = f'model.layers.{l}.'
        P[p + 'input_layernorm.weight'] = param(dim, scale=0.1, one=True)
        P[p + 'post_attention_layernorm.weight'] = param(dim, scale=0.1, one=True)
        P[p + 'self_attn.q_proj.weight'] = param(heads * hd, dim)
        P[p + 'self_attn.k_proj.weight'] = param(kv * hd, dim)
        P[p + 'self_attn.v_proj.weight'] = param(kv * hd, dim)
        P[p + 'self_attn.o_proj.weight'] = param(dim, heads * hd)
        P[p + 'mlp.gate_proj.weight'] = param(hidden, dim)
        P[p + 'mlp.up_proj.weight'] = param(hidden, dim)
        P[p + 'mlp.down_proj.weight'] = param(dim, hidden)
        if o['qk_norm']:
            P[p + 'self_attn.q_norm.weight'] = param(hd, scale=0.1, one=True)
            P[p + 'self_attn.k_norm.weight'] = param(hd, scale=0.1, one=True)
        if o['bias']:
            P[p + 'self_attn.q_proj.bias'] = param(heads * hd, scale=0.1)
            P[p + 'self_attn.k_proj.bias'] = param(kv * hd, scale=0.1)
            P[p + 'self_attn.v_proj.bias'] = param(kv * hd, scale=0.1)
    if not o['tied']:
        P['lm_head.weight'] = param(V, dim, scale=0.5)
    ids = torch.randint(0, V, (T,))
    R = torch.randn(T, V).float().double()
    targets = torch.randint(0, V, (T,))
    return o, P, ids, R, targets


pos = torch.cat([torch.arange(n) for n in lens])
seq = torch.cat([torch.full((n,), i) for i, n in enumerate(lens)])
allowed = (seq[:, None] == seq[None, :]) & (torch.arange(T)[None, :] <= torch.arange(T)[:, None])


def rmsnorm(x, w, eps):
    return x / torch.sqrt((x * x).mean(-1, keepdim=True) + eps) * w


def rope(x, o):
    i = torch.arange(0, hd, 2, dtype=torch.float64)
    ang = pos[:, None].double() / (o['theta'] ** (i / hd))[None, :]
    cos, sin = torch.cos(ang)[:, None, :], torch.sin(ang)[:, None, :]
    if o['rope'] == 'interleaved':
        a, b = x[..., 0::2], x[..., 1::2]
        return torch.stack([a * cos - b * sin, a * sin + b * cos], -1).reshape(x.shape)
    a, b = x[..., :hd // 2], x[..., hd // 2:]
    return torch.cat([a * cos - b * sin, b * cos + a * sin], -1)


def forward(P, ids, o):
    eps = o['eps']
    x = P['model.embed_tokens.weight'][ids]
    for l in range(layers):
        p = f'model.layers.{l}.'
        h = rmsnorm(x, P[p + 'input_layernorm.weight'], eps)

        def proj(n, H):
            y = h @ P[p + f'self_attn.{n}_proj.weight'].T
            if o['bias']:
                y = y + P[p + f'self_attn.{n}_proj.bias']
            return y.reshape(T, H, hd)

        q, k, v = proj('q', heads), proj('k', kv), proj('v', kv)
        if o['qk_norm']:
            q = rmsnorm(q, P[p + 'self_attn.q_norm.weight'], eps)
            k = rmsnorm(k, P[p + 'self_attn.k_norm.weight'], eps)
        q, k = rope(q, o), rope(k, o).repeat_interleave(heads // kv, 1)
        v = v.repeat_interleave(heads // kv, 1)
        s = (torch.einsum('thd,shd->hts', q, k) / hd ** 0.5).masked_fill(~allowed[None], float('-inf'))
        x = x + torch.einsum('hts,shd->thd', torch.softmax(s, -1), v).reshape(T, heads * hd) @ P[p + 'self_attn.o_proj.weight'].T
        h = rmsnorm(x, P[p + 'post_attention_layernorm.weight'], eps)
        x = x + (torch.nn.functional.silu(h @ P[p + 'mlp.gate_proj.weight'].T) * (h @ P[p + 'mlp.up_proj.weight'].T)) @ P[p + 'mlp.down_proj.weight'].T
    head = P['model.embed_tokens.weight'] if o['tied'] else P['lm_head.weight']
    return rmsnorm(x, P['model.norm.weight'], eps) @ head.T


exact = lambda t: [float('%.9g' % v) for v in t.detach().reshape(-1)]
short = lambda t: [float('%.7g' % v) for v in t.detach().reshape(-1)]
for variant, o in VARIANTS.items():
    o, P, ids, R, targets = make(variant)
    start = {n: t.detach().clone() for n, t in P.items()}
    logits = forward(P, ids, o)
    (logits * R).sum().backward()
    Q = {n: t.clone().requires_grad_() for n, t in start.items()}
    opt = torch.optim.AdamW(list(Q.values()), lr=1e-2, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01)
    adam_losses = []
    for _ in range(5):
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(forward(Q, ids, o), targets)
        adam_losses.append(float(loss))
        loss.backward()
        opt.step()
    out = {
        'source': 'scripts/golden/tiny_llama.py (PyTorch %s, float64 autograd)' % torch.__version__,
        'config': {'architecture': variant, 'vocabSize': V, 'dim': dim, 'hiddenDim': hidden, 'layers': layers, 'heads': heads, 'kvHeads': kv,
                   'headDim': hd, 'maxSeqLen': 64, 'ropeTheta': o['theta'], 'ropeConvention': o['rope'], 'rmsEps': o['eps'],
                   'tiedEmbeddings': o['tied'], 'qkNorm': o['qk_norm'], 'qkvBias': o['bias']},
        'lens': lens, 'ids': [int(i) for i in ids], 'R': exact(R), 'logits': short(logits),
        'params': {n: {'shape': list(t.shape), 'data': exact(t)} for n, t in start.items()},
        'grads': {n: short(t.grad) for n, t in P.items()},
        'targets': [int(i) for i in targets], 'adamLosses': adam_losses,
    }
    dst = os.path.join(os.path.dirname(__file__), '..', '..', 'tests', 'goldens', f'tiny_{variant}.json')
    json.dump(out, open(dst, 'w'))
    print('wrote', dst)
