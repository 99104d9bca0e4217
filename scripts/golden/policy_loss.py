#!/usr/bin/env python3
"""Writes tests/goldens/policy_loss.json: PyTorch (float64, materialized logits, autograd) results of the policy
loss as two public RL libraries define it, for ops.policyLoss to match:

- verl, verl/trainer/ppo/core_algos.py, compute_policy_loss (v0.4): ratio = exp(clamp(logp - old_logp, -20, 20));
  loss = max(-A*ratio, -A*clamp(ratio, 1 - clip_low, 1 + clip_high)); for A < 0, min(that, -A*clip_ratio_c)
  (dual clip); aggregated with agg_loss(..., "token-mean") = masked sum / mask count.
- TRL, trl/trainer/grpo_trainer.py, GRPOTrainer._compute_loss: per-token loss -min(ratio*A, clamp(ratio)*A),
  loss_type "grpo": each sequence's masked token mean, averaged over sequences (seq-mean-token-mean); with
  old_logp = logp.detach() (one update per batch) the ratio is 1 and the gradient is that of logp.

Run with a Python that has torch (Debian's python3-torch): python3 scripts/golden/policy_loss.py
"""
import json
import os

import torch

torch.manual_seed(5)
F64 = torch.float64


def flat(x):
    return [round(float(v), 12) for v in x.detach().reshape(-1).tolist()]


def case(name, T, H, V, cu, temperature, old_shift, agg, clip=(0.2, 0.28), dual=None, mask=None, logit_scale=1.0):
    hidden = (torch.randn(T, H, dtype=F64) * logit_scale).requires_grad_()
    weight = torch.randn(V, H, dtype=F64).requires_grad_()
    targets = torch.randint(0, V, (T,))
    seq_adv = torch.randn(len(cu) - 1, dtype=F64)
    adv = torch.zeros(T, dtype=F64)
    for b in range(len(cu) - 1):
        adv[cu[b]:cu[b + 1]] = seq_adv[b]
    m = torch.ones(T, dtype=F64) if mask is None else torch.tensor(mask, dtype=F64)
    logits = hidden @ weight.t() / temperature
    logprobs = torch.log_softmax(logits, dim=-1)
    logp = logprobs.gather(1, targets[:, None])[:, 0]
    entropy = -(logprobs.exp() * logprobs).sum(-1)
    if old_shift is None:
        old = logp.detach()
    else:
        old = (logp + torch.randn(T, dtype=F64) * old_shift).detach()
    ratio = torch.exp(torch.clamp(logp - old, -20.0, 20.0))
    l1 = -adv * ratio
    l2 = -adv * torch.clamp(ratio, 1 - clip[0], 1 + clip[1])
    per_token = torch.maximum(l1, l2)
    if dual is not None:
        per_token = torch.where(adv < 0, torch.minimum(-adv * dual, per_token), per_token)
    if agg == "token-mean":  # verl agg_loss token-mean
        loss = (per_token * m).sum() / m.sum()
    else:  # TRL grpo: mean over sequences of each sequence's masked token mean
        seq = [(per_token[cu[b]:cu[b + 1]] * m[cu[b]:cu[b + 1]]).sum() / m[cu[b]:cu[b + 1]].sum() for b in range(len(cu) - 1)]
        loss = torch.stack(seq).mean()
    loss.backward()
    return {
        "name": name, "T": T, "H": H, "V": V, "cuSeqlens": cu, "temperature": temperature, "aggregation": agg,
        "clipLow": clip[0], "clipHigh": clip[1], "dualClip": dual, "tokenMask": None if mask is None else mask,
        "hidden": flat(hidden), "weight": flat(weight), "targets": targets.tolist(), "advantages": flat(adv),
        "oldLogp": None if old_shift is None else flat(old),
        "loss": float(loss), "logp": flat(logp), "entropy": flat(entropy),
        "dHidden": flat(hidden.grad), "dWeight": flat(weight.grad),
    }


cases = [
    case("verl on-policy token-mean", 7, 8, 37, [0, 3, 7], 1.0, None, "token-mean"),
    case("verl clipped with dual clip, temperature 0.7", 9, 8, 41, [0, 4, 4, 9], 0.7, 0.3, "token-mean", dual=3.0,
         mask=[1, 1, 0, 1, 1, 1, 1, 0, 1]),
    case("TRL grpo seq-mean-token-mean, peaked logits", 8, 16, 53, [0, 5, 8], 1.0, 0.1, "seq-mean-token-mean", logit_scale=6.0),
]
path = os.path.join(os.path.dirname(__file__), "..", "..", "tests", "goldens", "policy_loss.json")
with open(path, "w") as f:
    json.dump({"torch": torch.__version__, "cases": cases}, f, separators=(",", ":"))
print(f"wrote {os.path.relpath(path)} ({os.path.getsize(path)} bytes)")
