"""Pick the torch device from a YOLOv5-style --device string ('', 'cpu', 'mps', '0', '0,1', 'cuda:0')."""

import os
import platform

import torch

from utils.log import LOGGER


_remapped = {}  # the --device spec this process set CUDA_VISIBLE_DEVICES to, once CUDA has started
_announced = set()  # device lines already logged: a process names its torch and device once, not per step


def _announce(line):
    if line not in _announced:
        _announced.add(line)
        LOGGER.info(line)


def select_device(device="", batch_size=0):
    """torch.device for `device`: '' → cuda:0 if available else cpu; '0,1' → those GPUs, seen as cuda:0, cuda:1.

    Raises ValueError (one line) when CUDA devices are requested but not available, or when a multi-GPU
    batch size does not split evenly. Logs one line with the torch version and the chosen device(s).
    """
    spec = str(device).strip().lower().replace("cuda:", "").replace("none", "").replace(" ", "")
    spec = "0" if spec == "cuda" else spec  # torch's own name for the first GPU
    head = f"YOLOv5-prune Python-{platform.python_version()} torch-{torch.__version__} "
    if spec in {"cpu", "mps"}:
        if spec == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
            raise ValueError("--device mps requested but MPS is not available; use --device cpu")
        _announce(head + spec.upper())
        return torch.device(spec)

    ids = spec.split(",") if spec else []
    if ids:
        if not all(i.isdigit() for i in ids):
            raise ValueError(f"invalid --device '{device}': use 'cpu', 'mps', a CUDA index like '0' "
                             f"or a list like '0,1'")
        # CUDA_VISIBLE_DEVICES only takes effect before CUDA starts; after that, address the GPU by its index.
        remap, before = not torch.cuda.is_initialized(), os.environ.get("CUDA_VISIBLE_DEVICES")
        if not remap and spec == _remapped.get("spec"):  # an earlier call already narrowed CUDA to these GPUs
            remap = True
        if remap:
            os.environ["CUDA_VISIBLE_DEVICES"] = spec
        if not torch.cuda.is_available() or torch.cuda.device_count() < (len(ids) if remap else max(map(int, ids)) + 1):
            if remap and before is None:  # leave the environment as found, so a later call still sees every GPU
                del os.environ["CUDA_VISIBLE_DEVICES"]
            elif remap:
                os.environ["CUDA_VISIBLE_DEVICES"] = before
            if not torch.cuda.is_available():
                raise ValueError(f"--device {device}: CUDA is not available on this machine; use --device cpu")
            raise ValueError(f"invalid CUDA '--device {device}' requested ({torch.cuda.device_count()} CUDA devices "
                             f"available); use '--device cpu' or pass valid CUDA device(s)")
        local = list(range(len(ids))) if remap else [int(i) for i in ids]  # torch's indices of the chosen GPUs
        if remap:
            _remapped["spec"] = spec
    elif torch.cuda.is_available():
        ids, local = ["0"], [0]
    else:
        _announce(head + "CPU")
        return torch.device("cpu")

    if len(ids) > 1 and batch_size > 0 and batch_size % len(ids):
        raise ValueError(f"--batch-size {batch_size} must be a multiple of the number of GPUs ({len(ids)})")
    gpus = []
    for i, k in zip(ids, local):
        p = torch.cuda.get_device_properties(k)
        gpus.append(f"CUDA:{i} ({p.name}, {p.total_memory / (1 << 20):.0f}MiB)")
    _announce(head + ", ".join(gpus))
    return torch.device(f"cuda:{local[0]}")
