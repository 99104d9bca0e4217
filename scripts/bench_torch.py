#!/usr/bin/env python3
"""Times ops in PyTorch for qwenlong's benchmarks, on the same sizes and thread count.

Reads {"cases": [{"op": ..., ...}], "threads": N, "quick": bool} on stdin and prints
{"results": [{"medianMs", "samples", "cpuMs", "version"} | null, ...]}; cpuMs is the process CPU time per
iteration (all threads), a figure that holds up better than wall time on a machine shared with other work; exits 1 when torch cannot be imported.
"""
import json
import statistics
import sys
import time

try:
    import torch
except Exception:  # torch missing or broken: the caller reports its own figures alone
    sys.exit(1)

DTYPES = {"f32": torch.float32, "f16": torch.float16, "bf16": torch.bfloat16}


def timed(fn, quick, min_time=0.5, min_samples=10, warmup=3):
    if quick:
        min_time, min_samples = 0.1, 5
    for _ in range(warmup):
        fn()
    times = []
    start = time.perf_counter()
    cpu0 = time.process_time()
    while len(times) < min_samples or time.perf_counter() - start < min_time:
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    cpu_ms = (time.process_time() - cpu0) * 1e3 / len(times)
    return statistics.median(times), len(times), cpu_ms


def case_add(c, quick):
    n, dtype = int(c["n"]), DTYPES[c.get("dtype", "f32")]
    a = torch.rand(n, dtype=torch.float32).to(dtype)
    b = torch.rand(n, dtype=torch.float32).to(dtype)
    out = torch.empty_like(a)
    return timed(lambda: torch.add(a, b, alpha=1.0, out=out), quick)


def case_matmul(c, quick):
    m, n, k = int(c["m"]), int(c["n"]), int(c["k"])
    dtype = DTYPES[c.get("dtype", "f32")]
    a = torch.rand(k, m, dtype=torch.float32).to(dtype).t() if c.get("transA") else torch.rand(m, k).to(dtype)
    b = torch.rand(n, k, dtype=torch.float32).to(dtype).t() if c.get("transB") else torch.rand(k, n).to(dtype)
    out = torch.empty(m, n, dtype=dtype)
    # Large products: the caller may ask for fewer runs ("warmup", "samples") so a case takes seconds, not minutes.
    runs = {"warmup": int(c.get("warmup", 3)), "min_samples": int(c.get("samples", 10))}
    return timed(lambda: torch.matmul(a, b, out=out), quick, **runs)


def _status_bytes(key):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    return None


def peak_reset():
    """Resets the process's peak RSS to its current RSS where Linux allows it (/proc/self/clear_refs), so that a
    peak measured next is the op's, not that of temporaries freed while the inputs were made. Returns the RSS the
    peak starts from (bytes) and the source peak_bytes must read: "hwm" (/proc's VmHWM) after a reset, else
    "maxrss" (the peak so far; the measurement then counts only growth above it)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        rss = _status_bytes("VmRSS")
        if rss is not None and _status_bytes("VmHWM") is not None:
            return rss, "hwm"
    except OSError:
        pass
    import resource
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024, "maxrss"


def peak_bytes(source):
    if source == "hwm":
        return _status_bytes("VmHWM")
    import resource
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def case_policy_loss(c, quick):
    """Materialized logits: log_softmax, gather, entropy, autograd (what a plain PyTorch RL loop does).
    dtype "bf16": hidden and weight in bf16, the product in bf16 (oneDNN's AVX512-BF16 kernels where the CPU has
    them) and upcast to f32 for the softmax, entropy and loss, as mixed-precision training does; autograd casts the
    logits' gradient back to bf16 for the two backward products.
    Returns the time and the peak extra memory (peak RSS growth over the inputs) of forward+backward."""
    T, H, V = int(c["T"]), int(c["H"]), int(c["V"])
    dtype = DTYPES[c.get("dtype", "f32")]
    hidden = (torch.randn(T, H) * 0.05).to(dtype).requires_grad_()
    weight = (torch.randn(V, H) * 0.05).to(dtype).requires_grad_()
    targets = torch.randint(0, V, (T,))
    adv = torch.randn(T)

    def step():
        hidden.grad = None
        weight.grad = None
        logits = (hidden @ weight.t()).float()
        logprobs = torch.log_softmax(logits, dim=-1)
        logp = logprobs.gather(1, targets[:, None])[:, 0]
        entropy = -(logprobs.exp() * logprobs).sum(-1).detach()
        loss = -(adv * logp).mean()
        loss.backward()
        return entropy

    before, source = peak_reset()
    step()
    outputs = (T * H + V * H) * hidden.element_size()  # the gradients: outputs, not workspace
    extra = max(0, peak_bytes(source) - before - outputs)
    median, samples, cpu_ms = timed(step, quick, min_time=0, min_samples=3, warmup=0)
    return median, samples, cpu_ms, extra


def case_attention(c, quick):
    """One sequence, heads-first layout (torch's own). impl "sdpa": the private
    torch.nn.functional._scaled_dot_product_attention of torch 1.13 (the math path on CPU); impl "math": softmax(q k^T
    scale + mask) v. GQA repeats k and v to the query heads inside the timed call. pass "forward" times the forward
    without autograd; "backward" times torch.autograd.grad of one retained forward."""
    T, hq, hkv, D = int(c["T"]), int(c["hq"]), int(c["hkv"]), int(c["D"])
    causal, impl, which = bool(c.get("causal")), c.get("impl", "sdpa"), c.get("pass", "forward")
    scale = 1.0 / D ** 0.5
    grad = which == "backward"
    q = torch.randn(1, hq, T, D).requires_grad_(grad)
    k = torch.randn(1, hkv, T, D).requires_grad_(grad)
    v = torch.randn(1, hkv, T, D).requires_grad_(grad)
    mask = torch.full((T, T), float("-inf")).triu_(1) if causal and impl == "math" else None

    def forward():
        kk = k.repeat_interleave(hq // hkv, dim=1) if hq != hkv else k
        vv = v.repeat_interleave(hq // hkv, dim=1) if hq != hkv else v
        if impl == "sdpa":
            return torch.nn.functional._scaled_dot_product_attention(q, kk, vv, None, 0.0, False, causal)[0]
        s = torch.matmul(q, kk.transpose(-1, -2)) * scale
        if mask is not None:
            s = s + mask
        return torch.matmul(torch.softmax(s, dim=-1), vv)

    runs = {"warmup": 1, "min_samples": 3, "min_time": 0.0}
    if not grad:
        with torch.no_grad():
            return timed(forward, quick, **runs)
    out = forward()
    dout = torch.randn_like(out)
    return timed(lambda: torch.autograd.grad(out, (q, k, v), dout, retain_graph=True), quick, **runs)


def case_train_step(c, quick):
    """One training step of a Llama-style decoder in eager PyTorch: forward over B packed-as-batch sequences of T
    tokens (causal softmax attention), mean next-token cross-entropy, backward, AdamW."""
    import torch.nn.functional as F
    V, dim, hidden, layers, heads = int(c["V"]), int(c["dim"]), int(c["hidden"]), int(c["layers"]), int(c["heads"])
    B, T = int(c["B"]), int(c["T"])
    hd = dim // heads
    g = torch.Generator().manual_seed(0)
    mk = lambda *s: (torch.randn(*s, generator=g) * 0.02).requires_grad_()
    P = {"emb": mk(V, dim), "norm": torch.ones(dim, requires_grad=True)}
    for l in range(layers):
        for n, s in {"n1": (dim,), "n2": (dim,)}.items():
            P[f"{l}.{n}"] = torch.ones(*s, requires_grad=True)
        for n, s in {"q": (dim, dim), "k": (dim, dim), "v": (dim, dim), "o": (dim, dim), "g": (hidden, dim), "u": (hidden, dim), "d": (dim, hidden)}.items():
            P[f"{l}.{n}"] = mk(*s)
    opt = torch.optim.AdamW(list(P.values()), lr=1e-4)
    ids = torch.randint(0, V, (B, T), generator=g)
    targets = torch.randint(0, V, (B, T), generator=g)
    pos = torch.arange(T)
    inv = 1.0 / (10000.0 ** (torch.arange(0, hd, 2).float() / hd))
    ang = pos[:, None].float() * inv[None, :]
    cos, sin = torch.cos(ang)[None, :, None, :], torch.sin(ang)[None, :, None, :]
    mask = torch.full((T, T), float("-inf")).triu(1)

    def rope(x):  # (B, T, H, hd), interleaved pairs
        a, b = x[..., 0::2], x[..., 1::2]
        return torch.stack([a * cos - b * sin, a * sin + b * cos], -1).flatten(-2)

    def rms(x, w):
        return x * torch.rsqrt((x * x).mean(-1, keepdim=True) + 1e-5) * w

    def step():
        opt.zero_grad()
        x = P["emb"][ids]
        for l in range(layers):
            h = rms(x, P[f"{l}.n1"])
            q = rope((h @ P[f"{l}.q"].t()).view(B, T, heads, hd)).transpose(1, 2)
            k = rope((h @ P[f"{l}.k"].t()).view(B, T, heads, hd)).transpose(1, 2)
            v = (h @ P[f"{l}.v"].t()).view(B, T, heads, hd).transpose(1, 2)
            att = torch.softmax(q @ k.transpose(-1, -2) / hd ** 0.5 + mask, -1) @ v
            x = x + att.transpose(1, 2).reshape(B, T, dim) @ P[f"{l}.o"].t()
            h = rms(x, P[f"{l}.n2"])
            x = x + (F.silu(h @ P[f"{l}.g"].t()) * (h @ P[f"{l}.u"].t())) @ P[f"{l}.d"].t()
        logits = rms(x, P["norm"]) @ P["emb"].t()
        F.cross_entropy(logits.view(-1, V), targets.view(-1)).backward()
        opt.step()

    return timed(step, quick, warmup=1, min_samples=3, min_time=0)


CASES = {"train_step": case_train_step, "add": case_add, "matmul": case_matmul, "policy_loss": case_policy_loss, "attention": case_attention}


def main():
    spec = json.load(sys.stdin)
    torch.set_num_threads(int(spec.get("threads", 1)))
    results = []
    for c in spec["cases"]:
        fn = CASES.get(c.get("op"))
        if fn is None:
            results.append(None)
            continue
        try:
            res = fn(c, bool(spec.get("quick")))
        except RuntimeError:  # out of memory on a large case: report ours alone
            results.append(None)
            continue
        # every case returns (median ms, samples, CPU ms per call[, extra bytes])
        entry = {"medianMs": res[0], "samples": res[1], "cpuMs": res[2], "version": torch.__version__}
        if len(res) > 3:
            entry["extraBytes"] = res[3]
        results.append(entry)
    json.dump({"results": results}, sys.stdout)


if __name__ == "__main__":
    main()
