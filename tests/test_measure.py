"""FLOP counts against the analytic formula for every mixer; throughput and memory records."""

import mmap

import pytest
import torch

from mixerlab.config import ModelConfig
from mixerlab.measure import (
    benchmark_inference,
    benchmark_training,
    count_flops,
    peak_memory,
    reset_peak_memory,
)
from mixerlab.models import create_model, list_mixers


def analytic_macs(cfg: ModelConfig) -> int:
    """Multiply-accumulates per image, written out from the architecture."""
    c, d, k = cfg.width, cfg.depth, cfg.kernel_size
    side = cfg.image_size // cfg.patch_size
    n = side * side
    hidden = round(c * cfg.mlp_ratio)
    stem = cfg.in_chans * cfg.patch_size**2 * c * n
    channel_mlp = 2 * c * hidden * n
    mixer = {
        "conv": c * k * k * n,  # depthwise: one k x k filter per channel
        "attention": 4 * c * c * n + 2 * n * n * c,  # qkv + proj, then QK^T and AV
        "mlp": 2 * c * n * round(n * cfg.mlp_ratio),  # token MLP per channel
        "random": c * n * n,  # one N x N matrix applied per channel
        "pool": 0,  # averages: no multiply-accumulates by convention
        "identity": 0,
    }[cfg.mixer]
    head = c * cfg.num_classes
    return stem + d * (mixer + channel_mlp) + head


@pytest.mark.parametrize("mixer", list_mixers())
@pytest.mark.parametrize("patch_size", [2, 4, 7])
def test_flops_match_analytic_count(mixer, patch_size):
    cfg = ModelConfig(mixer=mixer, patch_size=patch_size, width=32, depth=3, heads=4, kernel_size=7)
    counted = count_flops(create_model(cfg), (1, 28, 28))
    assert counted["macs"] == analytic_macs(cfg)
    assert counted["flops"] == 2 * counted["macs"]


def test_fused_cpu_attention_is_counted():
    """The fused CPU kernel would count as zero without mixerlab's formula."""
    from torch.utils.flop_counter import FlopCounterMode

    cfg = ModelConfig(mixer="attention", width=32, depth=1, heads=4)
    model = create_model(cfg).eval()
    with FlopCounterMode(display=False) as plain, torch.no_grad():
        model(torch.zeros(1, 1, 28, 28))
    ours = count_flops(model, (1, 28, 28))["flops"]
    n = 14 * 14
    assert ours - plain.get_total_flops() == 2 * (2 * n * n * 32)


def test_throughput_and_memory_records():
    model = create_model(ModelConfig(width=16, depth=1))
    inf = benchmark_inference(model, (1, 28, 28), batch_size=16, warmup=1, repeats=3, iters=1)
    assert inf["infer_images_per_s"] > 0 and inf["infer_repeats"] == 3
    assert inf["infer_images_per_s_iqr"] >= 0 and inf["device_name"]
    tr = benchmark_training(model, (1, 28, 28), num_classes=10, batch_size=8, warmup=1, repeats=2, iters=1)
    assert tr["train_step_images_per_s"] > 0
    # the training benchmark works on a copy: the model passed in is untouched
    assert all(p.grad is None for p in model.parameters())
    reset_peak_memory("cpu")
    before = peak_memory("cpu")["peak_mem_mb"]
    # 64 MiB of fresh pages: a new anonymous mapping, every page written. (A tensor could
    # reuse memory the allocator freed earlier in this process and never raise the RSS.)
    big = mmap.mmap(-1, 64 * 2**20)
    big.write(b"\x01" * (64 * 2**20))
    mem = peak_memory("cpu")
    assert mem["peak_mem_kind"] == "cpu_peak_rss" and mem["peak_mem_mb"] >= before + 60
    big.close()  # unmapped: the pages leave the RSS
    reset_peak_memory("cpu")  # a new trial in the same process starts a new peak
    assert peak_memory("cpu")["peak_mem_mb"] < mem["peak_mem_mb"] - 30
