"""Choosing the compute device: the GPU when there is one, clear refusals, and float32 kept on CUDA."""

from __future__ import annotations

import pytest
import torch

from core import device
from core.errors import ModelError


@pytest.mark.parametrize("found, expected", [([], "cpu"), (["mps"], "mps"), (["cuda", "mps"], "cuda")])
def test_auto_takes_the_best_gpu_there_is(monkeypatch, found, expected):
    monkeypatch.setattr(device, "accelerators", lambda: found)
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", True)
    assert device.pick_device("auto") == expected
    assert device.pick_device("cpu") == "cpu"
    # on CUDA, convolutions stay in full float32 so a take matches the CPU's (BENCHMARKS "CPU and GPU")
    assert torch.backends.cudnn.allow_tf32 is (expected != "cuda")


def test_a_missing_or_unknown_device_is_refused_with_what_to_choose(monkeypatch):
    monkeypatch.setattr(device, "accelerators", lambda: [])
    for wanted, says in (("cuda", "no usable NVIDIA GPU"), ("mps", "Apple MPS"), ("tpu", "Unknown compute device")):
        with pytest.raises(ModelError, match=says) as refused:
            device.pick_device(wanted)
        assert "cpu" in str(refused.value)
