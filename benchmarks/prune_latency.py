"""Latency of a pruned yolov5s-cls against the unpruned one, next to the FLOPs ratio.

Efficiency = (latency speed-up) / (FLOPs speed-up): 1.0 means pruning turns every FLOP saved into time
saved. Measured interleaved in one run, median of repeats, CPU, inference mode.

    python benchmarks/prune_latency.py --rate 0.5 --imgsz 224 --batch 16 1
"""

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from models.yolo import ClassificationModel  # noqa: E402
from utils.model_info import model_gflops  # noqa: E402
from utils.profiling import median_latency  # noqa: E402


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--cfg", default="yolov5s-cls.yaml")
    parser.add_argument("--rate", default="0.5")
    parser.add_argument("--imgsz", type=int, default=224)
    parser.add_argument("--batch", type=int, nargs="+", default=[16, 1])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--fuse", action="store_true", help="fold BatchNorm into convs first")
    parser.add_argument("--reference", default="yolov5n-cls.yaml", help="a smaller upstream model for comparison ('' to skip)")
    opt = parser.parse_args()

    torch.manual_seed(0)
    torch.set_flush_denormal(True)  # randomly initialised nets fade into denormals, which CPUs run very slowly
    full = ClassificationModel(opt.cfg).eval()
    smaller = {f"{opt.cfg} rate {opt.rate}": ClassificationModel(opt.cfg, rate=opt.rate).eval()}
    if opt.reference:
        smaller[f"{opt.reference} (upstream width change)"] = ClassificationModel(opt.reference).eval()
    if opt.fuse:
        for m in (full, *smaller.values()):
            m.fuse()
    g_full = model_gflops(full, opt.imgsz)
    print(f"{opt.cfg} vs smaller models at {opt.imgsz}, torch {torch.__version__}, {torch.get_num_threads()} threads")
    for bs in opt.batch:
        x = torch.randn(bs, 3, opt.imgsz, opt.imgsz)
        t_full, *t_small = median_latency([full, *smaller.values()], x, opt.repeats)
        for (name, m), t in zip(smaller.items(), t_small):
            flops_ratio, speedup = g_full / model_gflops(m, opt.imgsz), t_full / t
            print(f"batch {bs:>3} {name:<40}: {t_full * 1e3:7.1f} → {t * 1e3:6.1f} ms, latency ratio {speedup:.2f}x, "
                  f"FLOPs ratio {flops_ratio:.2f}x, efficiency {speedup / flops_ratio:.2f}")


if __name__ == "__main__":
    main()
