"""Seeding and the RNG state a resumed training run restores, as checkpoint-safe plain values."""

import os
import random

import numpy as np
import torch


def init_seeds(seed=0, deterministic=False):
    """Seed python, numpy and torch; deterministic also asks cuDNN/torch for reproducible kernels."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.cuda.manual_seed_all(seed)
    if deterministic:
        # warn_only: some CUDA backward kernels (adaptive pooling) have no deterministic version
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.deterministic = True
        os.environ["CUBLAS_WORKSPACE_CONFIG"] = ":4096:8"


def rng_state():
    """The process's random streams (dropout and anything else drawn in the training loop), as checkpoint-safe
    plain values and tensors. Data order and augmentation need none: they follow (seed, epoch)."""
    np_state = np.random.get_state(legacy=False)
    return {"python": random.getstate(),
            "numpy": {"key": np_state["state"]["key"].tolist(), "pos": int(np_state["state"]["pos"]),
                      "has_gauss": int(np_state["has_gauss"]), "gauss": float(np_state["gauss"])},
            "torch": torch.get_rng_state(),
            # this process's GPU only: get_rng_state_all() would open a CUDA context on every visible GPU
            "cuda": torch.cuda.get_rng_state() if torch.cuda.is_available() and torch.cuda.is_initialized() else None}


def rng_for_rank(saved, rank, world_size):
    """This process's state in a checkpoint's `rng`: one state per DDP rank (a list), or rank 0's alone (older
    checkpoints). None where the run had another number of processes and this is not rank 0: nothing to restore."""
    states = saved if isinstance(saved, list) else [saved]
    rank = max(rank, 0)
    if len(states) == max(world_size, 1) or rank == 0:
        return states[rank]
    return None


def restore_rng_state(state):
    random.setstate(state["python"])
    n = state["numpy"]
    key = np.array(n["key"], dtype=np.uint32)
    np.random.set_state({"bit_generator": "MT19937", "state": {"key": key, "pos": n["pos"]},
                         "has_gauss": n["has_gauss"], "gauss": n["gauss"]})
    torch.set_rng_state(state["torch"])
    if state["cuda"] is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["cuda"])
