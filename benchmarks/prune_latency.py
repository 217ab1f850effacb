"""Latency of a pruned classifier against the unpruned one, next to the FLOPs ratio, in PyTorch eager, TorchScript
and ONNX Runtime (CPU).

Efficiency = (latency speed-up) / (FLOPs speed-up): 1.0 means pruning turns every FLOP saved into time saved.
The deployed runtimes get what export.py writes (BatchNorm folded; ONNX through export.py's own export_onnx) and
their default settings. Shared machines swing medians by tens of percent, so each runtime is timed in --rounds
rounds; a round times each model in a block of forwards (their median; at least --repeats, and enough to last
--block-seconds), the order alternating between rounds, with a pause before each block. Blocks, not
forward-by-forward interleaving: ONNX Runtime's pool threads spin for a while after each run (its default, as
deployed), and interleaved forwards let one session's spinning threads slow the other (measured at batch 1: 2.6x
instead of 3.3x). Reported: the ratio of the fastest rounds (min: other tenants only ever slow a block down) and the
median over rounds of each round's own ratio, with that ratio's spread (max / min). The min is what reproduces: with
15 rounds two runs agreed within 2 % (batch 1) and 4 % (batch 16) where 5 rounds of longer blocks differed by 10-20 %;
`halves` compares the min ratio of the first and the second half of the rounds, and a run whose halves differ by more
than --max-halves is flagged: too noisy to conclude. benchmarks/latency_check.py times the same files another way.

    python benchmarks/prune_latency.py --cfg yolov5s-cls.yaml --rate 0.5 --imgsz 224 --batch 1 16
    python benchmarks/prune_latency.py --cfg yolo11n-cls.yaml --rate 0.25 0.5
    python benchmarks/prune_latency.py --runtimes onnxruntime --threads 1     # per-core efficiency, no thread sync
"""

import argparse
import statistics
import sys
import tempfile
import time
from copy import deepcopy
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from export import export_onnx, quiet_deprecations  # noqa: E402
from models.yolo import ClassificationModel  # noqa: E402
from utils.model_info import model_gflops  # noqa: E402

RUNTIMES = ("eager", "torchscript", "onnxruntime")


def runner(model, x, runtime):
    """A callable x → output of `model` in `runtime` (BatchNorm folded for the deployed runtimes, as exported)."""
    if runtime == "eager":
        return model
    fused = deepcopy(model).fuse().eval()
    if runtime == "torchscript":
        with torch.inference_mode(), quiet_deprecations():
            return torch.jit.freeze(torch.jit.trace(fused, x))
    import onnxruntime as ort

    with tempfile.TemporaryDirectory() as tmp:
        file = export_onnx(fused, x, Path(tmp) / "model.onnx")
        options = ort.SessionOptions()
        options.intra_op_num_threads = torch.get_num_threads()  # as many threads as PyTorch gets
        session = ort.InferenceSession(str(file), options, providers=["CPUExecutionProvider"])
    return lambda images: session.run(None, {"images": images.numpy()})


def block_median(fn, x, repeats):
    """Median seconds of `repeats` forwards of fn in a row."""
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn(x)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def rounds_of(fns, x, rounds, repeats, block_seconds=0.3, warmup=3, pause=0.05):
    """[[seconds of fn0, fn1, ...] per round]: each round times every callable in a block of forwards (at least
    `repeats`, and enough to last about `block_seconds`: a 3 ms forward's median over 10 calls moved ±20 % between
    rounds), in alternating order, each after a `pause` in which the previous block's pool threads stop spinning."""
    per_round = []
    with torch.inference_mode():
        counts = []
        for fn in fns:
            for _ in range(warmup):
                fn(x)
            counts.append(max(repeats, round(block_seconds / block_median(fn, x, 3))))
        for r in range(rounds):
            times = [0.0] * len(fns)
            for i in (range(len(fns)) if r % 2 == 0 else reversed(range(len(fns)))):
                time.sleep(pause)
                times[i] = block_median(fns[i], x, counts[i])
            per_round.append(times)
    return per_round


def min_ratio(times):
    """Unpruned over pruned seconds of the fastest rounds; times[i] = (unpruned, pruned) seconds of round i."""
    return min(t[0] for t in times) / min(t[1] for t in times)


def ratios(times):
    """(ratio of the fastest rounds, median of the per-round ratios, max/min spread of the per-round ratios,
    max/min of the min ratios of the first and second half of the rounds) of times[i] = (unpruned, pruned)."""
    per_round = [full / pruned for full, pruned in times]
    half = len(times) // 2
    halves = sorted([min_ratio(times[:half] or times), min_ratio(times[half:])])
    return min_ratio(times), statistics.median(per_round), max(per_round) / min(per_round), halves[1] / halves[0]


def main(opt):
    if opt.threads:
        torch.set_num_threads(opt.threads)  # ONNX Runtime gets the same number
    torch.manual_seed(0)
    torch.set_flush_denormal(True)  # randomly initialised nets fade into denormals, which CPUs run very slowly
    full = ClassificationModel(opt.cfg).eval()
    g_full = model_gflops(full, opt.imgsz)
    print(f"{opt.cfg} at {opt.imgsz} px, torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"{opt.rounds} rounds x {opt.repeats} forwards")
    print(f"{'rate':>5}{'batch':>6} {'runtime':<12}{'unpruned ms':>12}{'pruned ms':>10}{'FLOPs x':>8}{'speed-up min':>13}"
          f"{'median':>8}{'spread':>8}{'halves':>8}{'efficiency':>11}")
    for rate in opt.rate:
        pruned = ClassificationModel(opt.cfg, rate=rate).eval()
        flops_ratio = g_full / model_gflops(pruned, opt.imgsz)
        for bs in opt.batch:
            x = torch.randn(bs, 3, opt.imgsz, opt.imgsz)
            for runtime in opt.runtimes:
                times = rounds_of([runner(full, x, runtime), runner(pruned, x, runtime)], x, opt.rounds, opt.repeats,
                                  opt.block_seconds)
                best, median, spread, halves = ratios(times)
                flag = "  (noisy: do not conclude)" if halves > opt.max_halves else ""
                print(f"{rate:>5}{bs:>6} {runtime:<12}{min(t[0] for t in times) * 1e3:>12.1f}"
                      f"{min(t[1] for t in times) * 1e3:>10.1f}{flops_ratio:>8.2f}{best:>12.2f}x{median:>7.2f}x"
                      f"{spread:>8.2f}{halves:>8.3f}{best / flops_ratio:>11.2f}{flag}")


def parse_opt():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cfg", default="yolov5s-cls.yaml", help="model YAML (YOLOv5 or ultralytics name)")
    parser.add_argument("--rate", type=float, nargs="+", default=[0.5], help="uniform compress rates")
    parser.add_argument("--imgsz", type=int, default=224)
    parser.add_argument("--batch", type=int, nargs="+", default=[1, 16])
    parser.add_argument("--runtimes", nargs="+", default=list(RUNTIMES), choices=RUNTIMES)
    parser.add_argument("--rounds", type=int, default=15, help="rounds per runtime, each timing both models")
    parser.add_argument("--repeats", type=int, default=10, help="least forwards per model per round (their median)")
    parser.add_argument("--block-seconds", type=float, default=0.2, help="more forwards per round up to this long")
    parser.add_argument("--threads", type=int, default=0, help="CPU threads of every runtime (0: PyTorch's default)")
    parser.add_argument("--max-halves", type=float, default=1.05,
                        help="flag runs whose two halves' min ratios differ more (max/min)")
    return parser.parse_args()


if __name__ == "__main__":
    main(parse_opt())
