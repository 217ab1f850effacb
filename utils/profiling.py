"""Latency measurement shared by benchmarks and summaries: interleaved, warmed-up, median of repeats."""

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
