"""The same workloads as op_timing.mjs in PyTorch on the same GPU (cuBLAS, SDPA/flash, logits materialized)."""
import contextlib, json, sys, torch
import torch.nn.functional as F

dev = 'cuda'
try:
    from torch.nn.attention import sdpa_kernel, SDPBackend
    flash = lambda: sdpa_kernel(SDPBackend.FLASH_ATTENTION)
except ImportError:
    flash = contextlib.nullcontext
res = []
def time(name, fn, iters, work):
    fn(); fn(); torch.cuda.synchronize()
    samples = []
    for _ in range(7):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        for _ in range(iters): fn()
        b.record(); torch.cuda.synchronize()
        samples.append(a.elapsed_time(b) / iters)
    ms = sorted(samples)[3]
    w = work(ms)
    res.append({'name': name, 'ms': ms, **w})
    print(f"{name:44s} {ms:9.3f} ms  " + "  ".join(f"{k} {v:.1f}" for k, v in w.items()), flush=True)

ONLY = __import__('os').environ.get('OP_TIMING_ONLY')
def other_sections():
    n = 64 << 20
    a, b = torch.randn(n, device=dev), torch.randn(n, device=dev); out = torch.empty_like(a)
    time('add f32 64M', lambda: torch.add(a, b, out=out), 10, lambda ms: {'GB/s': 3 * n * 4 / ms / 1e6})
    del a, b, out
    n = 4096
    a, b = torch.randn(n, n, device=dev, dtype=torch.bfloat16), torch.randn(n, n, device=dev, dtype=torch.bfloat16); out = torch.empty_like(a)
    time('matmul bf16 4096x4096x4096', lambda: torch.matmul(a, b, out=out), 10, lambda ms: {'TFLOP/s': 2 * n ** 3 / ms / 1e9})
    del a, b, out
    for T, causal in [(4096, False), (4096, True), (16384, True)]:
        total, H, D = 16384, 16, 128; B = total // T
        q, k, v = [torch.randn(B, H, T, D, device=dev, dtype=torch.bfloat16, requires_grad=True) for _ in range(3)]
        do = torch.randn(B, H, T, D, device=dev, dtype=torch.bfloat16)
        flops = 4 * B * T * T * H * D * (0.5 if causal else 1)
        with flash():
            time(f'attention fwd bf16 T={T} causal={causal}', lambda: F.scaled_dot_product_attention(q, k, v, is_causal=causal), 5, lambda ms: {'TFLOP/s': flops / ms / 1e9})
            o = F.scaled_dot_product_attention(q, k, v, is_causal=causal)
            time(f'attention bwd bf16 T={T} causal={causal}', lambda: torch.autograd.grad(o, (q, k, v), do, retain_graph=True), 3, lambda ms: {'TFLOP/s': 2.5 * flops / ms / 1e9})
        del q, k, v, do, o
    for dt in [torch.float32, torch.bfloat16]:
        policy_loss(4096, 1024, 32768, dt, 3)

def policy_loss(T, H, V, dt, iters):
    """Forward and backward with the logits materialized in f32 (PyTorch's way), and its peak extra memory."""
    h = (torch.randn(T, H, device=dev) * 0.1).to(dt).requires_grad_()
    w = (torch.randn(V, H, device=dev) * 0.1).to(dt).requires_grad_()
    tg = torch.randint(0, V, (T,), device=dev); adv = torch.randn(T, device=dev)
    def step():
        logits = (h @ w.t()).float()
        logp = torch.log_softmax(logits, -1).gather(1, tg[:, None])[:, 0]
        ratio = torch.exp(logp - logp.detach())
        loss = -(torch.minimum(ratio * adv, torch.clamp(ratio, 0.8, 1.28) * adv)).mean()
        loss.backward()
        h.grad = None; w.grad = None
    torch.cuda.reset_peak_memory_stats(); base = torch.cuda.memory_allocated()
    time(f"policyLoss {'f32' if dt == torch.float32 else 'bf16'} T={T} H={H} V={V}", step, iters, lambda ms: {'TFLOP/s': 6 * T * H * V / ms / 1e9})
    res[-1]['peakExtraMiB'] = (torch.cuda.max_memory_allocated() - base) / 2 ** 20
    print('  peak extra MiB', res[-1]['peakExtraMiB'])
    del h, w, tg, adv
    torch.cuda.empty_cache()

def kv_section():
    # The card's read bandwidth: a read-only reduction over 1 GiB (bf16), twenty times the L2.
    big = torch.randn(1 << 29, device=dev, dtype=torch.bfloat16)
    time('read stream bf16 1 GiB', lambda: torch.sum(big, dtype=torch.float32), 20, lambda ms: {'GB/s': big.numel() * 2 / ms / 1e6})
    del big
    # decode over a contiguous bf16 cache (B, Hkv, T, D), GQA by a grouped matmul: reads K and V once.
    for B, T in [(1, 4096), (16, 4096), (1, 32768), (16, 32768)]:
        Hq, Hkv, D = 32, 8, 128
        k = torch.randn(B, Hkv, T, D, device=dev, dtype=torch.bfloat16); v = torch.randn_like(k)
        q = torch.randn(B, Hkv, Hq // Hkv, D, device=dev, dtype=torch.bfloat16)
        def decode():
            s = torch.matmul(q, k.transpose(-1, -2)) * (D ** -0.5)
            return torch.matmul(torch.softmax(s.float(), -1).to(torch.bfloat16), v)
        nbytes = 2 * B * T * Hkv * D * 2
        time(f'paged decode bf16 batch {B} context {T}', decode, 20, lambda ms: {'GB/s': nbytes / ms / 1e6})
        del k, v, q

SECTIONS = ONLY.split(',') if ONLY else None  # None: every section; else e.g. 'kv' or 'policyLossLarge,kv'
if SECTIONS is None:
    other_sections()
if SECTIONS is None or 'policyLossLarge' in SECTIONS:
    policy_loss(16384, 4096, 151936, torch.bfloat16, 1)
if SECTIONS is None or 'kv' in SECTIONS:
    kv_section()
if len(sys.argv) > 1: json.dump(res, open(sys.argv[1], 'w'), indent=1)
