"""Choosing where the models run: the local GPU when there is one, the CPU otherwise."""

from __future__ import annotations

from .errors import ModelError

DEVICE_CHOICES = ("auto", "cpu", "cuda", "mps")


def accelerators() -> list[str]:
    """The GPUs this PyTorch can use here, best first: 'cuda' (NVIDIA), 'mps' (Apple)."""
    import torch

    found = ["cuda"] if torch.cuda.is_available() else []
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        found.append("mps")
    return found


def pick_device(preference: str = "auto") -> str:
    """A torch device string for `preference` (auto, cpu, cuda, mps); clear error if it is absent."""
    preference = (preference or "auto").lower()
    if preference not in DEVICE_CHOICES:
        raise ModelError(f"Unknown compute device '{preference}'; use one of {', '.join(DEVICE_CHOICES)}.")
    available = accelerators()
    if preference == "auto":
        preference = available[0] if available else "cpu"
    if preference == "cuda" and "cuda" not in available:
        raise ModelError("CUDA was asked for but this PyTorch has no usable NVIDIA GPU; choose 'auto' or 'cpu'.")
    if preference == "mps" and "mps" not in available:
        raise ModelError("Apple MPS was asked for but is not available here; choose 'auto' or 'cpu'.")
    use_full_float32(preference)
    return preference


def use_full_float32(device: str) -> None:
    """Keep CUDA convolutions in full float32. PyTorch lets cuDNN use TF32 (a 10-bit mantissa) by
    default; with it a GPU take of the diffusion model differs from the CPU's wherever a nearest-code
    choice is close (0.2 mm at 12 of 1800 frames, BENCHMARKS "CPU and GPU"), so the take a farm bakes
    would not be the one the animator auditioned. Full float32 costs these small models no time."""
    if str(device).startswith("cuda"):
        import torch

        torch.backends.cudnn.allow_tf32 = False
