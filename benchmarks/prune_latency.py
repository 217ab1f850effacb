"""Latency of a pruned classifier against the unpruned one, next to the FLOPs ratio, in PyTorch eager, TorchScript
and ONNX Runtime (CPU).

Efficiency = (latency speed-up) / (FLOPs speed-up): 1.0 means pruning turns every FLOP saved into time saved.
Shared machines swing medians by tens of percent, so each runtime is timed in --rounds rounds, every round
interleaving the two models (median of --repeats forwards each); reported: the ratio of the fastest rounds (min)
and the median over rounds of each round's own ratio, with that ratio's spread (max / min). A spread above
--max-spread is flagged: too noisy to conclude.

    python benchmarks/prune_latency.py --cfg yolov5s-cls.yaml --rate 0.5 --imgsz 224 --batch 1 16
    python benchmarks/prune_latency.py --cfg yolo11n-cls.yaml --rate 0.25 0.5
"""

import argparse
import io
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from export import quiet_deprecations  # noqa: E402
from models.yolo import ClassificationModel  # noqa: E402
from utils.model_info import model_gflops  # noqa: E402
from utils.profiling import median_latency  # noqa: E402

RUNTIMES = ("eager", "torchscript", "onnxruntime")


def runner(model, x, runtime):
    """A callable x → output of `model` in `runtime` (BatchNorm folded for the deployed runtimes, as exported)."""
    if runtime == "eager":
        return model
    fused = ClassificationModel(model.yaml).eval()
    fused.load_state_dict(model.state_dict())
    fused.fuse()
    if runtime == "torchscript":
        with torch.inference_mode(), quiet_deprecations():
            return torch.jit.freeze(torch.jit.trace(fused, x))
    import onnxruntime as ort

    buffer = io.BytesIO()
    with quiet_deprecations():
        torch.onnx.export(fused, x, buffer, input_names=["images"], dynamo=False)
    options = ort.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()  # as many threads as PyTorch gets
    # ORT's pool threads spin after each run by default: interleaved with another session, those spinning threads
    # steal the cores the other model runs on (measured: 2.3x instead of 3.0x for yolov5s-cls rate 0.5, batch 16).
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    session = ort.InferenceSession(buffer.getvalue(), options, providers=["CPUExecutionProvider"])
    return lambda images: session.run(None, {"images": images.numpy()})


def rounds_of(fns, x, rounds, repeats):
    """Per-round median seconds of each callable, interleaved within every round: [[t_fn0, t_fn1, ...], ...]."""
    return [median_latency(fns, x, repeats=repeats) for _ in range(rounds)]


def ratios(times):
    """(ratio of the fastest rounds, median of the per-round ratios, max/min spread of the per-round ratios) of
    times[i] = (unpruned, pruned) seconds."""
    per_round = [full / pruned for full, pruned in times]
    best = min(t[0] for t in times) / min(t[1] for t in times)
    return best, statistics.median(per_round), max(per_round) / min(per_round)


def main(opt):
    torch.manual_seed(0)
    torch.set_flush_denormal(True)  # randomly initialised nets fade into denormals, which CPUs run very slowly
    full = ClassificationModel(opt.cfg).eval()
    g_full = model_gflops(full, opt.imgsz)
    print(f"{opt.cfg} at {opt.imgsz} px, torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"{opt.rounds} rounds x {opt.repeats} forwards")
    print(f"{'rate':>5}{'batch':>6} {'runtime':<12}{'unpruned ms':>12}{'pruned ms':>10}{'FLOPs x':>8}{'speed-up min':>13}"
          f"{'median':>8}{'spread':>8}{'efficiency':>11}")
    for rate in opt.rate:
        pruned = ClassificationModel(opt.cfg, rate=rate).eval()
        flops_ratio = g_full / model_gflops(pruned, opt.imgsz)
        for bs in opt.batch:
            x = torch.randn(bs, 3, opt.imgsz, opt.imgsz)
            for runtime in opt.runtimes:
                times = rounds_of([runner(full, x, runtime), runner(pruned, x, runtime)], x, opt.rounds, opt.repeats)
                best, median, spread = ratios(times)
                flag = "  (noisy: do not conclude)" if spread > opt.max_spread else ""
                print(f"{rate:>5}{bs:>6} {runtime:<12}{min(t[0] for t in times) * 1e3:>12.1f}"
                      f"{min(t[1] for t in times) * 1e3:>10.1f}{flops_ratio:>8.2f}{best:>12.2f}x{median:>7.2f}x"
                      f"{spread:>8.2f}{best / flops_ratio:>11.2f}{flag}")


def parse_opt():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cfg", default="yolov5s-cls.yaml", help="model YAML (YOLOv5 or ultralytics name)")
    parser.add_argument("--rate", type=float, nargs="+", default=[0.5], help="uniform compress rates")
    parser.add_argument("--imgsz", type=int, default=224)
    parser.add_argument("--batch", type=int, nargs="+", default=[1, 16])
    parser.add_argument("--runtimes", nargs="+", default=list(RUNTIMES), choices=RUNTIMES)
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds per runtime")
    parser.add_argument("--repeats", type=int, default=10, help="forwards per model per round (their median)")
    parser.add_argument("--max-spread", type=float, default=1.15, help="flag per-round ratios spreading more (max/min)")
    return parser.parse_args()


if __name__ == "__main__":
    main(parse_opt())
