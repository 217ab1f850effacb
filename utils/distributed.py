"""DDP plumbing for `torchrun`: process ranks from the environment, process-group setup and teardown.

torchrun sets LOCAL_RANK (process index on this machine), RANK (index over all machines) and WORLD_SIZE
(processes in all). A plain `python train.py` has none of them: LOCAL_RANK = RANK = -1, WORLD_SIZE = 1.
"""

import os
from contextlib import contextmanager
from datetime import timedelta

import torch
import torch.distributed as dist
import torch.nn as nn

LOCAL_RANK = int(os.getenv("LOCAL_RANK", -1))
RANK = int(os.getenv("RANK", -1))
WORLD_SIZE = int(os.getenv("WORLD_SIZE", 1))
TIMEOUT = timedelta(hours=3)  # rank 0 may spend long on dataset caching or ranking while others wait


def is_distributed():
    return dist.is_available() and dist.is_initialized()


def is_main_process():
    """True on the process that logs and saves: rank 0, or the only process."""
    return RANK in {-1, 0}


def backend_for(device):
    """NCCL for CUDA tensors, gloo for CPU ones (NCCL cannot move CPU tensors)."""
    return "nccl" if device.type == "cuda" and dist.is_nccl_available() else "gloo"


def init_distributed(device):
    """Join the torchrun process group; returns the device this process trains on.

    On CUDA each local process owns GPU LOCAL_RANK. Multi-node needs nothing here: torchrun's
    --nnodes/--node_rank/--master_addr/--master_port fill the env:// rendezvous this reads.
    """
    if device.type == "cuda":
        if torch.cuda.device_count() <= LOCAL_RANK:
            raise ValueError(f"LOCAL_RANK {LOCAL_RANK} needs {LOCAL_RANK + 1} visible GPUs, "
                             f"found {torch.cuda.device_count()}: lower --nproc_per_node or fix --device")
        torch.cuda.set_device(LOCAL_RANK)
        device = torch.device("cuda", LOCAL_RANK)
    if not is_distributed():
        dist.init_process_group(backend=backend_for(device), timeout=TIMEOUT)
    return device


@contextmanager
def torch_distributed_zero_first(local_rank):
    """Let local rank 0 run the block first (downloads, caches, files); the others run it afterwards."""
    sync = local_rank != -1 and is_distributed()
    if sync and local_rank != 0:
        dist.barrier()
    yield
    if sync and local_rank == 0:
        dist.barrier()


def broadcast_object(obj, src=0):
    """rank src's obj on every rank (any picklable object); returns obj unchanged without DDP."""
    if not is_distributed():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def gather_object(obj, dst=0):
    """[obj of rank 0, obj of rank 1, ...] on rank dst (None on the others); [obj] without DDP. Every rank must call it."""
    if not is_distributed():
        return [obj]
    box = [None] * dist.get_world_size() if dist.get_rank() == dst else None
    dist.gather_object(obj, box, dst=dst)
    return box


def de_parallel(model):
    """The plain model inside a DP/DDP wrapper (state dicts without the 'module.' prefix)."""
    return model.module if isinstance(model, (nn.parallel.DataParallel, nn.parallel.DistributedDataParallel)) else model


def cleanup():
    """Leave the process group so the process exits cleanly."""
    if is_distributed():
        dist.destroy_process_group()
