"""Timing shared by benchmarks, summaries, val and predict: CUDA-synchronised, interleaved, medians."""

import statistics
import time

import torch


def median_latency(models, x, repeats=10, warmup=3):
    """Median seconds per forward of each model on x, timing the models in turn so drift hits all alike."""
    times = [[] for _ in models]
    with torch.inference_mode():
        for m in models:
            for _ in range(warmup):
                m(x)
        for _ in range(repeats):
            for i, m in enumerate(models):
                if x.is_cuda:
                    torch.cuda.synchronize()
                t = time.perf_counter()
                m(x)
                if x.is_cuda:
                    torch.cuda.synchronize()
                times[i].append(time.perf_counter() - t)
    return [statistics.median(t) for t in times]


class Timer:
    """Accumulating wall-clock timer; synchronises CUDA so GPU work is counted where it happens."""

    def __init__(self, device):
        self.cuda = device.type == "cuda"
        self.total = self.last = 0.0

    def __enter__(self):
        if self.cuda:
            torch.cuda.synchronize()
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc):
        if self.cuda:
            torch.cuda.synchronize()
        self.last = time.perf_counter() - self.start
        self.total += self.last
