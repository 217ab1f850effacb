"""Shared non-fixture test helpers (fixtures live in conftest.py).

Imported as `from helpers import ...`: pytest's default (prepend) import mode puts tests/ on sys.path.
"""

import functools
import http.server
import os
import threading
from contextlib import contextmanager

import torch
import torch.nn as nn

from models.io.checkpoints import checkpoint_dict, save_checkpoint
from models.yolo import ClassificationModel
from utils.paths import ROOT  # repository root

__all__ = ["ROOT", "Payload", "http_server", "lively", "make_checkpoint"]


def lively(model, seed=0):
    """Random weights whose outputs depend on the input (default init fades to a constant through the depth)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                gain = 2 if isinstance(m, nn.Conv2d) else 0.5
                m.weight.copy_(torch.randn(m.weight.shape, generator=g) * (gain / m.weight[0].numel()) ** 0.5)
            elif isinstance(m, nn.BatchNorm2d):
                n = m.num_features
                m.weight.copy_(0.5 + torch.rand(n, generator=g))
                m.bias.copy_(0.1 * torch.randn(n, generator=g))
                m.running_mean.copy_(0.1 * torch.randn(n, generator=g))
                m.running_var.copy_(0.5 + torch.rand(n, generator=g))
    return model


def silence_pruned_filters(src, model, seed=0):
    """Scores that rank last the filters `model` drops from src (random ones, as many per group as it prunes), whose
    outputs are made exactly 0 in src: pruning them must then leave every output unchanged."""
    from models.graph import channel_groups

    g, scores = torch.Generator().manual_seed(seed), {}
    for group in channel_groups(model):
        n = src.get_submodule(group.members[0]).conv.out_channels
        dead = torch.randperm(n, generator=g)[: n - group.channels]
        scores[group.name] = torch.ones(n)
        scores[group.name][dead] = 0
        for name in group.members:
            bn = src.get_submodule(name).bn
            bn.weight.data[dead] = 0  # BN output 0 → SiLU(0) = 0: the channel carries nothing
            bn.bias.data[dead] = 0
    return scores


def upstream_transforms(size):
    """The `model.transforms` upstream YOLOv5's classify/train.py pickles into its checkpoints: torchvision's Compose
    and Normalize around YOLOv5's CenterCrop and ToTensor."""
    import torchvision.transforms as T

    from utils.augmentations import IMAGENET_MEAN, IMAGENET_STD, CenterCrop, ToTensor

    return T.Compose([CenterCrop(size), ToTensor(), T.Normalize(IMAGENET_MEAN, IMAGENET_STD)])


def make_checkpoint(path, nc=3, rate=None, cfg="yolov5n-cls.yaml", imgsz=None):
    """A project checkpoint of a small classifier with class names c0, c1, ... and input-dependent outputs; imgsz:
    the training size it records (in 'opt', as classify/train.py writes it), None: none."""
    model = lively(ClassificationModel(cfg, nc=nc, rate=rate))
    model.names = [f"c{i}" for i in range(nc)]
    fields = {"opt": {"imgsz": imgsz}} if imgsz else {}
    return save_checkpoint(checkpoint_dict(model, **fields), path)


@contextmanager
def http_server(directory):
    """Serve `directory` on 127.0.0.1 from a thread; always shut down on exit."""
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(directory)))
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


class Payload:
    """Pickles as a call to os.system: loading the file with plain pickle would run `touch marker`."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)
