"""The PyTorch side of the side-by-side benchmarks (scripts/bench_*_official.py): an official
model's training step (its loss, SGD with momentum 0.9 and weight decay 5e-4) and inference, in
fp32 or under ``torch.autocast`` bfloat16, timed like the zoo's (images/s after warm-up); and the
machine both sides ran on, for the JSON report."""

import os
from pathlib import Path

from bench_fit import per_second


def torch_batch(images, labels, mean, std):
    """uint8 NHWC images and labels -> normalised NCHW float tensors and int64 labels."""
    import torch

    mean = torch.tensor(mean).view(1, 3, 1, 1)
    std = torch.tensor(std).view(1, 3, 1, 1)
    return (torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255.0 - mean) / std, torch.from_numpy(labels).long()


def autocast_options(precision):
    import torch

    return {"device_type": "cpu", "dtype": torch.bfloat16, "enabled": precision == "bfloat16"}


def torch_train_step(net, x, y, loss_fn, precision):
    """One training step as a no-argument function: ``loss_fn(net(x), y)`` (under autocast for
    bfloat16), backward, SGD with momentum 0.9 and weight decay 5e-4."""
    import torch

    net.train()
    optimizer = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)

    def step():
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast(**autocast_options(precision)):
            loss = loss_fn(net(x), y)
        loss.backward()
        optimizer.step()

    return step


def torch_rate(net, x, y, loss_fn, infer_fn, mode, precision, warmup, steps):
    """Images/s of ``loss_fn(net(x), y)`` + backward + SGD (mode "train"), or of
    ``infer_fn(net(x))`` under no_grad (any other mode)."""
    import torch

    batch = len(y)
    if mode == "train":
        return per_second(torch_train_step(net, x, y, loss_fn, precision), warmup, steps, batch)
    net.eval()
    autocast = autocast_options(precision)

    def infer():
        with torch.no_grad(), torch.autocast(**autocast):
            infer_fn(net(x)).float().numpy()
    return per_second(infer, warmup, steps, batch)


def machine():
    """What the numbers depend on: CPU model and flags, core count, library versions."""
    import platform

    from zoo.training.recipe import cpu_flags

    model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), platform.processor()) if Path("/proc/cpuinfo").exists() else ""
    flags = sorted(f for f in cpu_flags() if f.startswith(("avx512", "amx")) or f in ("avx2", "fma"))
    versions = {}
    for name in ("tensorflow", "keras", "torch"):
        try:
            versions[name] = __import__(name).__version__
        except ImportError:
            pass
    return {"cpu": model, "cores": os.cpu_count(), "flags": flags, "versions": versions}
