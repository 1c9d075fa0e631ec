"""Model FLOPs utilisation (MFU): achieved training FLOP/s over the device's peak.

FLOPs per trained token (tokens = non-padding tokens of the batch):

    full fine-tune:  6·N + 12·L·d·S        forward 2N, backward 4N (activations 2N + weights 2N)
    PEFT:            4·N + 6·N_a + 12·L·d·S forward 2N, backward w.r.t. activations 2N (the frozen weights
                                           need no weight gradient); the adapter's own N_a weights cost the
                                           full 6 (forward 2, backward 4)

N counts the weights that take part in a matrix product: every linear layer (the LM head too, also when
it is tied to the input embedding), not the embedding lookup. 12·L·d·S is attention's score and
weighted-sum products (PaLM, appendix B): L layers, d = heads x head dim, S = the mean row length.
Recomputation by gradient checkpointing is not useful work and is not counted (that would be HFU).
Prompt/prefix virtual tokens are not counted as tokens.

Peak: bf16 dense tensor-core FLOP/s from a table of data-centre GPUs (fp32 runs use the TF32 figure),
``FLYWHEEL_PEAK_TFLOPS`` to override; on CPU, cores x clock x FLOPs per cycle (fp32 FMA: 64 with
AVX-512, 32 with AVX2, 16 otherwise), read from /proc/cpuinfo — an upper bound, so CPU MFU reads low.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

# Dense (no sparsity) tensor-core peaks, FLOP/s: (bf16, tf32).
GPU_PEAKS = {
    "H200": (989.4e12, 494.7e12),
    "H100 PCIe": (756.0e12, 378.0e12),
    "H100": (989.4e12, 494.7e12),
    "GH200": (989.4e12, 494.7e12),
    "B200": (2250e12, 1100e12),
    "A100": (312e12, 156e12),
    "L40S": (362.1e12, 183.2e12),
    "L4": (121e12, 60e12),
    "A10": (125e12, 62.5e12),
}


def matmul_params(model) -> int:
    """Weights used in matrix products: in x out of every linear layer (packed 4-bit layers included)."""
    from torch import nn

    n = 0
    for m in model.modules():
        if isinstance(m, nn.Linear):
            n += m.in_features * m.out_features
        elif type(m).__name__ == "Conv1D":  # GPT-2 style
            n += m.weight.shape[0] * m.weight.shape[1]
    return n


def flops_per_token(n_matmul: int, n_adapter: int, layers: int, attn_dim: int, seq_len: float, full: bool) -> float:
    attention = 12 * layers * attn_dim * seq_len
    if full:
        return 6 * n_matmul + attention
    return 4 * n_matmul + 6 * n_adapter + attention


def peak_flops(device: str, bf16: bool) -> tuple[float, str]:
    """(peak FLOP/s, where the figure comes from)."""
    if os.environ.get("FLYWHEEL_PEAK_TFLOPS"):
        return float(os.environ["FLYWHEEL_PEAK_TFLOPS"]) * 1e12, "FLYWHEEL_PEAK_TFLOPS"
    if device.startswith("cuda"):
        import torch

        name = torch.cuda.get_device_name(0)
        for key, (b, t) in GPU_PEAKS.items():
            if key in name:
                return (b if bf16 else t), f"{name}, {'bf16' if bf16 else 'tf32'} dense"
        return float("nan"), f"{name}: unknown peak (set FLYWHEEL_PEAK_TFLOPS)"
    import torch

    cores = torch.get_num_threads()
    flags, mhz = "", 0.0
    try:
        info = Path("/proc/cpuinfo").read_text()
        flags = re.search(r"^flags\s*:(.*)$", info, re.M).group(1)
        mhz = max(float(x) for x in re.findall(r"^cpu MHz\s*:\s*([\d.]+)", info, re.M))
    except (OSError, AttributeError, ValueError):
        pass
    try:
        mhz = max(mhz, int(Path("/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq").read_text()) / 1000)
    except (OSError, ValueError):
        pass
    per_cycle = 64 if " avx512f" in flags else 32 if " avx2" in flags else 16
    if not mhz:
        return float("nan"), "CPU clock unknown (set FLYWHEEL_PEAK_TFLOPS)"
    return cores * mhz * 1e6 * per_cycle, f"CPU {cores} threads x {mhz:.0f} MHz x {per_cycle} fp32 FLOP/cycle"
