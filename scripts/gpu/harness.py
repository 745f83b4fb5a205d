"""GPU harness for dtrain's CUDA part, through its C ABI with ctypes (GPU machines have no Node).

Checks device buffers, every NCCL collective on a world of one GPU against host results, the AdamW kernel
against torch.optim.AdamW, and benchmarks the kernel beside PyTorch's fused AdamW and a device-to-device copy
of the same bytes; then the layer kernels (cuBLAS GEMM in fp32 and bf16, bias + ReLU/GELU, softmax
cross-entropy) against torch.nn.functional.linear / relu / gelu / cross_entropy and autograd on CUDA, and the
GEMM timed beside torch.matmul for the same shapes, all in one run. Exits non-zero on any mismatch.
"""
import ctypes
import os
import sys

import torch

lib = ctypes.CDLL(os.environ["DTRAIN_CUDA_LIB"])
F32, F64, I32, I64, BF16, F16 = range(6)
SUM, AVG, MAX, MIN, PROD = range(5)
TORCH_DTYPE = {F32: torch.float32, F64: torch.float64, I32: torch.int32, I64: torch.int64, BF16: torch.bfloat16,
               F16: torch.float16}


class HParams(ctypes.Structure):
    _fields_ = [("lr", ctypes.c_float), ("beta1", ctypes.c_float), ("beta2", ctypes.c_float), ("eps", ctypes.c_float),
                ("weight_decay", ctypes.c_float), ("step", ctypes.c_int64), ("grad_scale", ctypes.c_float)]


# The whole C ABI (addon/cuda/dtrain_cuda.h) with its signatures: ctypes would otherwise pass Python ints as
# 32-bit C ints, which truncates size_t counts. A missing symbol fails here, so the ABI and this list stay in step.
P, I, S = ctypes.c_void_p, ctypes.c_int, ctypes.c_size_t
PI, PF, PP, PU8 = ctypes.POINTER(I), ctypes.POINTER(ctypes.c_float), ctypes.POINTER(P), ctypes.POINTER(ctypes.c_uint8)
PH = ctypes.POINTER(HParams)
ABI = {
    "dtrain_cuda_abi_version": ([], I),
    "dtrain_cuda_last_error": ([], ctypes.c_char_p),
    "dtrain_cuda_built_archs": ([], ctypes.c_char_p),
    "dtrain_cuda_runtime_version": ([PI], I),
    "dtrain_cuda_driver_version": ([PI], I),
    "dtrain_cuda_device_count": ([PI], I),
    "dtrain_cuda_device_name": ([I, ctypes.c_char_p, S], I),
    "dtrain_cuda_set_device": ([I], I),
    "dtrain_cuda_malloc": ([PP, S], I),
    "dtrain_cuda_free": ([P], I),
    "dtrain_cuda_h2d": ([P, P, S], I),
    "dtrain_cuda_d2h": ([P, P, S], I),
    "dtrain_cuda_d2d": ([P, P, S], I),
    "dtrain_cuda_fill": ([P, I, S, ctypes.c_double], I),
    "dtrain_cuda_synchronize": ([], I),
    "dtrain_cuda_time_copy": ([P, P, S, I, PF], I),
    "dtrain_cuda_adamw_step": ([P, I, P, P, P, P, S, PH], I),
    "dtrain_cuda_time_adamw": ([P, I, P, P, P, P, S, PH, I, PF], I),
    "dtrain_cuda_ipc_export": ([P, PU8], I),
    "dtrain_cuda_ipc_import": ([PU8, PP], I),
    "dtrain_cuda_ipc_close": ([P], I),
    "dtrain_cuda_bias_act": ([P, P, P, S, S, I], I),
    "dtrain_cuda_bias_act_backward": ([P, P, P, P, S, S, I, I], I),
    "dtrain_cuda_softmax_xent": ([P, P, S, S, ctypes.c_double, P, ctypes.POINTER(ctypes.c_double)], I),
    "dtrain_cublas_load": ([ctypes.c_char_p], I),
    "dtrain_cublas_loaded_path": ([], ctypes.c_char_p),
    "dtrain_cuda_gemm": ([P, P, P, S, S, S, I, I], I),
    "dtrain_nccl_load": ([ctypes.c_char_p], I),
    "dtrain_nccl_version": ([PI], I),
    "dtrain_nccl_loaded_path": ([], ctypes.c_char_p),
    "dtrain_nccl_unique_id": ([PU8], I),
    "dtrain_nccl_comm_init": ([PP, PU8, I, I, I, I], I),
    "dtrain_nccl_comm_split": ([P, I, I, PP], I),
    "dtrain_nccl_comm_destroy": ([P], I),
    "dtrain_nccl_comm_abort": ([P], I),
    "dtrain_nccl_all_reduce": ([P, P, P, S, I, I], I),
    "dtrain_nccl_reduce_scatter": ([P, P, P, S, I, I], I),
    "dtrain_nccl_all_gather": ([P, P, P, S, I], I),
    "dtrain_nccl_broadcast": ([P, P, P, S, I, I], I),
    "dtrain_nccl_send": ([P, P, S, I, I], I),
    "dtrain_nccl_recv": ([P, P, S, I, I], I),
}
for fn_name, (args, res) in ABI.items():
    fn = getattr(lib, fn_name)
    fn.argtypes, fn.restype = args, res
if lib.dtrain_cuda_abi_version() != 2:
    sys.exit(f"libdtrain_cuda ABI {lib.dtrain_cuda_abi_version()}, this harness knows 2")
failures = []


def check(rc, what):
    if rc != 0:
        raise RuntimeError(f"{what}: {lib.dtrain_cuda_last_error().decode()}")


def expect(ok, what):
    print(("ok    " if ok else "FAIL  ") + what)
    if not ok:
        failures.append(what)


def ptr(t):
    return ctypes.c_void_p(t.data_ptr())


count = ctypes.c_int()
check(lib.dtrain_cuda_device_count(ctypes.byref(count)), "device count")
name = ctypes.create_string_buffer(256)
check(lib.dtrain_cuda_device_name(0, name, 256), "device name")
drv = ctypes.c_int()
lib.dtrain_cuda_driver_version(ctypes.byref(drv))
print(f"devices: {count.value}; device 0: {name.value.decode()}; driver CUDA {drv.value}; "
      f"built for {lib.dtrain_cuda_built_archs().decode()}")
torch.cuda.set_device(0)

# Buffers: fill and copies for every dtype, through dtrain's own allocator.
for dt, tdt in TORCH_DTYPE.items():
    n = 1000003
    p = ctypes.c_void_p()
    esize = torch.empty(0, dtype=tdt).element_size()
    check(lib.dtrain_cuda_malloc(ctypes.byref(p), n * esize), "malloc")
    check(lib.dtrain_cuda_fill(p, dt, n, ctypes.c_double(3.0)), "fill")
    host = torch.empty(n, dtype=tdt)
    check(lib.dtrain_cuda_d2h(ctypes.c_void_p(host.data_ptr()), p, n * esize), "d2h")
    expect(bool((host == 3).all()), f"fill + d2h {tdt}")
    src = (torch.arange(n) % 97).to(tdt)
    check(lib.dtrain_cuda_h2d(p, ctypes.c_void_p(src.data_ptr()), n * esize), "h2d")
    check(lib.dtrain_cuda_d2h(ctypes.c_void_p(host.data_ptr()), p, n * esize), "d2h")
    expect(bool((host == src).all()), f"h2d round trip {tdt}")
    check(lib.dtrain_cuda_free(p), "free")

# AdamW against torch.optim.AdamW (fp32), several steps, and bf16 params with an fp32 master copy.
torch.manual_seed(0)
n = 1 << 20
hp = dict(lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01)
p_ref = torch.randn(n, device="cuda")
p = p_ref.clone()
m = torch.zeros(n, device="cuda")
v = torch.zeros(n, device="cuda")
ref = torch.nn.Parameter(p_ref)
opt = torch.optim.AdamW([ref], **hp)
for step in range(1, 6):
    g = torch.randn(n, device="cuda")
    ref.grad = g.clone()
    opt.step()
    h = HParams(hp["lr"], hp["betas"][0], hp["betas"][1], hp["eps"], hp["weight_decay"], step, 1.0)
    check(lib.dtrain_cuda_adamw_step(ptr(p), F32, None, ptr(g), ptr(m), ptr(v), n, ctypes.byref(h)), "adamw")
torch.cuda.synchronize()
rel = ((p - ref.detach()).abs().max() / ref.detach().abs().max()).item()
expect(rel < 1e-6, f"AdamW fp32 vs torch.optim.AdamW after 5 steps: max rel diff {rel:.2e}")

master = torch.randn(n, device="cuda")
pb = master.to(torch.bfloat16)
mb = torch.zeros(n, device="cuda")
vb = torch.zeros(n, device="cuda")
ref = torch.nn.Parameter(master.clone())
opt = torch.optim.AdamW([ref], **hp)
for step in range(1, 4):
    g = torch.randn(n, device="cuda")
    ref.grad = g.clone()
    opt.step()
    h = HParams(hp["lr"], hp["betas"][0], hp["betas"][1], hp["eps"], hp["weight_decay"], step, 1.0)
    check(lib.dtrain_cuda_adamw_step(ptr(pb), BF16, ptr(master), ptr(g), ptr(mb), ptr(vb), n, ctypes.byref(h)), "adamw")
torch.cuda.synchronize()
rel = ((master - ref.detach()).abs().max() / ref.detach().abs().max()).item()
expect(rel < 1e-6, f"AdamW bf16 params, fp32 master vs torch: max rel diff {rel:.2e}")
expect(bool((pb == master.to(torch.bfloat16)).all()), "bf16 params are the rounded fp32 master")

# NCCL on one GPU: every collective against the host's answer.
rc = lib.dtrain_nccl_load(None)
if rc != 0:
    expect(False, f"NCCL load: {lib.dtrain_cuda_last_error().decode()}")
else:
    ver = ctypes.c_int()
    lib.dtrain_nccl_version(ctypes.byref(ver))
    print(f"NCCL {ver.value} from {lib.dtrain_nccl_loaded_path().decode()}")
    uid = (ctypes.c_uint8 * 128)()
    check(lib.dtrain_nccl_unique_id(uid), "unique id")
    comm = ctypes.c_void_p()
    check(lib.dtrain_nccl_comm_init(ctypes.byref(comm), uid, 1, 0, 0, 30000), "comm init")
    for dt, tdt in TORCH_DTYPE.items():
        x = (torch.arange(4099, device="cuda") % 13).to(tdt)
        y = torch.empty_like(x)
        for op in (SUM, AVG, MAX, MIN, PROD):
            if op == AVG and dt in (I32, I64):
                continue
            check(lib.dtrain_nccl_all_reduce(comm, ptr(x), ptr(y), x.numel(), dt, op), "all_reduce")
            expect(bool((y == x).all()), f"nccl all_reduce op={op} {tdt} (world 1)")
        y.zero_()
        check(lib.dtrain_nccl_broadcast(comm, ptr(x), ptr(y), x.numel(), dt, 0), "broadcast")
        expect(bool((y == x).all()), f"nccl broadcast {tdt}")
        y.zero_()
        check(lib.dtrain_nccl_all_gather(comm, ptr(x), ptr(y), x.numel(), dt), "all_gather")
        expect(bool((y == x).all()), f"nccl all_gather {tdt}")
        y.zero_()
        check(lib.dtrain_nccl_reduce_scatter(comm, ptr(x), ptr(y), x.numel(), dt, SUM), "reduce_scatter")
        expect(bool((y == x).all()), f"nccl reduce_scatter {tdt}")
    # Ordering: the comm stream does not block on the default stream, where a GEMM may still be running when
    # the all-reduce of its output is called; the event the collective waits for must make it read the result.
    big = 4096
    ga, gb = torch.randn(big, big, device="cuda"), torch.randn(big, big, device="cuda")
    gc, gout = torch.zeros(big, big, device="cuda"), torch.full((big, big), -1.0, device="cuda")
    torch.cuda.synchronize()
    if lib.dtrain_cublas_load(None) == 0:
        check(lib.dtrain_cuda_gemm(ptr(ga), ptr(gb), ptr(gc), big, big, big, 0, F32), "gemm")
        check(lib.dtrain_nccl_all_reduce(comm, ptr(gc), ptr(gout), gc.numel(), F32, SUM), "all_reduce")
        torch.cuda.synchronize()
        expect(bool((gout == gc).all()) and bool(gc.abs().sum() > 0),
               "nccl all_reduce right after a GEMM on the default stream reads the GEMM's result")
    else:
        expect(False, f"cuBLAS load: {lib.dtrain_cuda_last_error().decode()}")
    sub = ctypes.c_void_p()
    rc = lib.dtrain_nccl_comm_split(comm, 0, 0, ctypes.byref(sub))
    expect(rc == 0, "ncclCommSplit of the world into one group" + ("" if rc == 0 else f": {lib.dtrain_cuda_last_error().decode()}"))
    if rc == 0:
        lib.dtrain_nccl_comm_destroy(sub)
    lib.dtrain_nccl_comm_destroy(comm)
    print("not run: multi-GPU NCCL (watchdog abort on a dead peer, send/recv between ranks) needs several GPUs")

# Benchmark: AdamW kernel vs PyTorch fused AdamW vs a device-to-device copy, same run, same GPU.
n = 64 << 20
iters = 50
p = torch.randn(n, device="cuda")
g = torch.randn(n, device="cuda")
m = torch.zeros(n, device="cuda")
v = torch.zeros(n, device="cuda")
h = HParams(1e-3, 0.9, 0.999, 1e-8, 0.01, 1, 1.0)
ms = ctypes.c_float()
check(lib.dtrain_cuda_time_adamw(ptr(p), F32, None, ptr(g), ptr(m), ptr(v), n, ctypes.byref(h), iters, ctypes.byref(ms)), "time adamw")
dtrain_s = ms.value / 1e3 / iters
a = torch.empty(n * 7, dtype=torch.float32, device="cuda")  # 28 bytes per parameter, read once and written once
b = torch.empty_like(a)
check(lib.dtrain_cuda_time_copy(ptr(b), ptr(a), a.numel() * 4 // 2, iters, ctypes.byref(ms)), "time copy")
copy_s = ms.value / 1e3 / iters
copy_bw = 2 * (a.numel() * 4 // 2) / copy_s
param = torch.nn.Parameter(torch.randn(n, device="cuda"))
param.grad = torch.randn(n, device="cuda")
try:
    topt = torch.optim.AdamW([param], lr=1e-3, fused=True)
    label = "torch fused AdamW"
except (TypeError, RuntimeError):
    topt = torch.optim.AdamW([param], lr=1e-3, foreach=True)
    label = "torch foreach AdamW"


def seconds_per_call(fn):
    """Mean wall time of fn on the GPU over `iters` calls, after 3 warm-up calls (CUDA events)."""
    for _ in range(3):
        fn()
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(iters):
        fn()
    end.record()
    torch.cuda.synchronize()
    return start.elapsed_time(end) / 1e3 / iters


torch_s = seconds_per_call(topt.step)
bytes_per_step = 28 * n
print(f"\nAdamW, {n / 1e6:.0f}M fp32 params (28 B/param), {iters} steps each:")
print(f"  dtrain kernel       {dtrain_s * 1e3:8.3f} ms/step  {bytes_per_step / dtrain_s / 1e9:8.1f} GB/s")
print(f"  {label:<19} {torch_s * 1e3:8.3f} ms/step  {bytes_per_step / torch_s / 1e9:8.1f} GB/s")
print(f"  d2d copy            {copy_bw / 1e9:8.1f} GB/s (same bytes moved)")
print(f"  dtrain / copy bandwidth: {bytes_per_step / dtrain_s / copy_bw:.2f} (goal >= 0.85)")
print(f"  dtrain speed-up over {label}: {torch_s / dtrain_s:.2f}x (goal > 1)")

# Mixed precision: bf16 params with an fp32 master. The kernel reads master, grad, m, v (16 B) and writes
# master, m, v and the bf16 param (14 B): 30 B per parameter. PyTorch's equivalent is its fused AdamW on the
# fp32 master followed by the bf16 copy of it (the way AMP-style master weights are kept).
master = p.clone()
pb = master.to(torch.bfloat16)
mb = torch.zeros(n, device="cuda")
vb = torch.zeros(n, device="cuda")
check(lib.dtrain_cuda_time_adamw(ptr(pb), BF16, ptr(master), ptr(g), ptr(mb), ptr(vb), n, ctypes.byref(h), iters, ctypes.byref(ms)), "time adamw bf16")
bf16_s = ms.value / 1e3 / iters
tmaster = torch.nn.Parameter(p.clone())
tmaster.grad = g.clone()
tpb = tmaster.detach().to(torch.bfloat16)
topt_b = torch.optim.AdamW([tmaster], lr=1e-3, fused=True) if label.startswith("torch fused") else torch.optim.AdamW([tmaster], lr=1e-3, foreach=True)


def master_step_and_copy():
    topt_b.step()
    tpb.copy_(tmaster.detach())


torch_b_s = seconds_per_call(master_step_and_copy)
bf16_bytes = 30 * n
print(f"\nAdamW, {n / 1e6:.0f}M bf16 params with an fp32 master (30 B/param), {iters} steps each:")
print(f"  dtrain kernel       {bf16_s * 1e3:8.3f} ms/step  {bf16_bytes / bf16_s / 1e9:8.1f} GB/s")
print(f"  {label} + bf16 copy {torch_b_s * 1e3:8.3f} ms/step")
print(f"  dtrain / copy bandwidth: {bf16_bytes / bf16_s / copy_bw:.2f} (goal >= 0.85)")
print(f"  dtrain speed-up over {label} + copy: {torch_b_s / bf16_s:.2f}x (goal > 1)")

# CUDA IPC: another process maps a buffer this one allocated and reads what was written into it.
IPC_READER = """
import ctypes, os, sys
lib = ctypes.CDLL(os.environ["DTRAIN_CUDA_LIB"])
P, PP, PU8 = ctypes.c_void_p, ctypes.POINTER(ctypes.c_void_p), ctypes.POINTER(ctypes.c_uint8)
lib.dtrain_cuda_ipc_import.argtypes, lib.dtrain_cuda_d2h.argtypes = [PU8, PP], [P, P, ctypes.c_size_t]
lib.dtrain_cuda_ipc_close.argtypes, lib.dtrain_cuda_last_error.restype = [P], ctypes.c_char_p
handle = (ctypes.c_uint8 * 64).from_buffer_copy(bytes.fromhex(sys.argv[1]))
p = ctypes.c_void_p()
if lib.dtrain_cuda_ipc_import(handle, ctypes.byref(p)) != 0:
    sys.exit("import: " + lib.dtrain_cuda_last_error().decode())
out = (ctypes.c_float * 1000)()
if lib.dtrain_cuda_d2h(ctypes.addressof(out), p, 4000) != 0 or lib.dtrain_cuda_ipc_close(p) != 0:
    sys.exit(lib.dtrain_cuda_last_error().decode())
print(sum(out))
"""
import subprocess  # noqa: E402

ipc_buf = ctypes.c_void_p()
check(lib.dtrain_cuda_malloc(ctypes.byref(ipc_buf), 4000), "malloc")
src = torch.arange(1000, dtype=torch.float32)
check(lib.dtrain_cuda_h2d(ipc_buf, ctypes.c_void_p(src.data_ptr()), 4000), "h2d")
check(lib.dtrain_cuda_synchronize(), "synchronize")
handle = (ctypes.c_uint8 * 64)()
check(lib.dtrain_cuda_ipc_export(ipc_buf, handle), "ipc export")
reader = subprocess.run([sys.executable, "-c", IPC_READER, bytes(handle).hex()], capture_output=True, text=True,
                        env=os.environ)
got = reader.stdout.strip() or reader.stderr.strip()
expect(got == "499500.0", f"CUDA IPC: a second process reads the exported buffer (sum {got}, want 499500.0)")
check(lib.dtrain_cuda_free(ipc_buf), "free")

# Layers against PyTorch on CUDA: a dense layer y = gelu(x·Wᵀ + b) (torch.nn.Linear's layout, dtrain's
# transW), its backward through cross-entropy, in dtrain's kernels and in torch autograd.
TRANS_A, TRANS_B, ACCUMULATE = 1, 2, 4
ACTS = {"none": 0, "relu": 1, "gelu": 2}
check(lib.dtrain_cublas_load(None), "cublas load")
print(f"\ncuBLAS from {lib.dtrain_cublas_loaded_path().decode()}")
torch.backends.cuda.matmul.allow_tf32 = False  # dtrain's fp32 GEMM is true fp32, so compare with that


def close(got, want, tol):
    """Normwise: the worst |got - want| over the largest |want| (elementwise ratios blow up near zero)."""
    err = ((got.double() - want.double()).abs().max() / want.double().abs().max().clamp_min(1e-30)).item()
    return err, err <= tol


def dgemm(a, b, c, m, n, k, flags, dtype=F32):
    check(lib.dtrain_cuda_gemm(ptr(a), ptr(b), ptr(c), m, n, k, flags, dtype), "gemm")


torch.manual_seed(0)
rows, inputs, outputs = 257, 385, 129
for act_name, act in ACTS.items():
    x = torch.randn(rows, inputs, device="cuda")
    w = torch.randn(outputs, inputs, device="cuda") / inputs ** 0.5
    b = torch.randn(outputs, device="cuda")
    labels = torch.randint(0, outputs, (rows,), device="cuda", dtype=torch.int32)
    tx, tw, tb = (t.clone().requires_grad_() for t in (x, w, b))
    tz = torch.nn.functional.linear(tx, tw, tb)
    ty = {"none": lambda z: z, "relu": torch.relu,
          "gelu": lambda z: torch.nn.functional.gelu(z, approximate="tanh")}[act_name](tz)
    tloss = torch.nn.functional.cross_entropy(ty, labels.long())
    tloss.backward()

    z = torch.empty(rows, outputs, device="cuda")
    dgemm(x, w, z, rows, outputs, inputs, TRANS_B)  # z = x·Wᵀ
    y = torch.empty_like(z)
    check(lib.dtrain_cuda_bias_act(ptr(z), ptr(b), ptr(y), rows, outputs, act), "bias_act")
    dy = torch.empty_like(y)
    loss = ctypes.c_double()
    check(lib.dtrain_cuda_softmax_xent(ptr(y), ptr(labels), rows, outputs, 1.0 / rows, ptr(dy), ctypes.byref(loss)),
          "softmax_xent")
    dz = torch.empty_like(dy)
    db = torch.empty(outputs, device="cuda")
    check(lib.dtrain_cuda_bias_act_backward(ptr(dy), ptr(z), ptr(dz), ptr(db), rows, outputs, act, 0), "backward")
    dx = torch.empty_like(x)
    dgemm(dz, w, dx, rows, inputs, outputs, 0)  # dx = dz·W
    dw = torch.empty_like(w)
    dgemm(dz, x, dw, outputs, inputs, rows, TRANS_A)  # dW = dzᵀ·x
    torch.cuda.synchronize()
    expect(abs(loss.value - tloss.item()) <= 1e-5 * abs(tloss.item()),
           f"linear+{act_name}+cross_entropy loss {loss.value:.7f} vs torch {tloss.item():.7f}")
    for label_, got, want in (("y", y, ty), ("dx", dx, tx.grad), ("dW", dw, tw.grad), ("db", db, tb.grad)):
        err, ok = close(got, want.detach(), 1e-5)
        expect(ok, f"linear+{act_name}: {label_} vs torch autograd, worst error {err:.1e} of the largest value")

# GEMM in every transpose and accumulate, fp32 and bf16 inputs, against torch.matmul in fp64 of the same inputs.
for dt in (F32, BF16):
    for flags in range(8):
        m, n, k = 131, 67, 259
        ta, tb, acc = flags & TRANS_A, flags & TRANS_B, flags & ACCUMULATE
        a = torch.randn(*((k, m) if ta else (m, k)), device="cuda").to(TORCH_DTYPE[dt])
        bm = torch.randn(*((n, k) if tb else (k, n)), device="cuda").to(TORCH_DTYPE[dt])
        c = torch.randn(m, n, device="cuda")
        op_a, op_b = (a.double().T if ta else a.double()), (bm.double().T if tb else bm.double())
        want = op_a @ op_b + (c.double() if acc else 0)
        dgemm(a, bm, c, m, n, k, flags, dt)
        torch.cuda.synchronize()
        bound = op_a.abs() @ op_b.abs()
        err = ((c.double() - want).abs() / (2 * (k + 2) * 2 ** -24 * (bound + 1))).max().item()
        expect(err <= 1, f"gemm {'bf16' if dt == BF16 else 'fp32'} flags={flags}: worst {err:.2f} of the fp32 bound")

# GEMM speed beside torch.matmul (cuBLAS from PyTorch) for the same shapes; goal >= 0.9x.
print("\nGEMM, dtrain (cuBLAS via dlopen) beside torch.matmul, same shapes and dtypes:")
for dt in (F32, BF16):
    for m, n, k in ((4096, 4096, 4096), (8192, 1024, 4096), (256, 4096, 1024)):
        a = torch.randn(m, k, device="cuda").to(TORCH_DTYPE[dt])
        bm = torch.randn(k, n, device="cuda").to(TORCH_DTYPE[dt])
        c = torch.empty(m, n, device="cuda")
        ours = seconds_per_call(lambda: dgemm(a, bm, c, m, n, k, 0, dt))
        tc = torch.empty(m, n, device="cuda", dtype=TORCH_DTYPE[dt])
        theirs = seconds_per_call(lambda: torch.matmul(a, bm, out=tc))
        tflops = 2 * m * n * k / 1e12
        print(f"  {'bf16' if dt == BF16 else 'fp32'} {m}x{n}x{k}: dtrain {tflops / ours:7.1f} TFLOP/s, "
              f"torch {tflops / theirs:7.1f} TFLOP/s, ratio {theirs / ours:.2f} (goal >= 0.9)")

print(f"\n{len(failures)} failed" if failures else "\nall GPU checks passed")
sys.exit(1 if failures else 0)
