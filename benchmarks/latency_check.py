"""A second opinion on benchmarks/prune_latency.py's ONNX Runtime speed-up, timed another way on purpose.

prune_latency.py takes the median of single forwards inside each block; this takes each block's mean (calls counted
over a fixed time, no per-call timer) and the fastest block per file. Agreement of the two is what says the number
is the runtime's, not the method's.

    python benchmarks/latency_check.py --cfg yolov5s-cls.yaml --rate 0.5 --imgsz 224 --batch 1 16
"""

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from export import export_onnx  # noqa: E402
from models.yolo import ClassificationModel  # noqa: E402
from utils.model_info import model_gflops  # noqa: E402


def seconds_per_call(session, feed, block_seconds):
    """Mean seconds of the calls that fit in one block of about `block_seconds`."""
    calls, start = 0, time.perf_counter()
    while time.perf_counter() - start < block_seconds:
        session.run(None, feed)
        calls += 1
    return (time.perf_counter() - start) / calls


def main(opt):
    import onnxruntime as ort

    torch.manual_seed(0)
    full, pruned = (ClassificationModel(opt.cfg, rate=r).eval() for r in (0.0, opt.rate))
    flops = model_gflops(full, opt.imgsz) / model_gflops(pruned, opt.imgsz)
    options = ort.SessionOptions()
    options.intra_op_num_threads = opt.threads or torch.get_num_threads()
    for bs in opt.batch:
        x = torch.randn(bs, 3, opt.imgsz, opt.imgsz)
        with tempfile.TemporaryDirectory() as tmp:
            sessions = [ort.InferenceSession(str(export_onnx(m.fuse(), x, Path(tmp) / f"{i}.onnx")), options,
                                             providers=["CPUExecutionProvider"]) for i, m in enumerate((full, pruned))]
        feed = {"images": x.numpy()}
        best = [float("inf")] * 2
        for r in range(opt.rounds):
            for i in (0, 1) if r % 2 == 0 else (1, 0):
                time.sleep(0.05)
                best[i] = min(best[i], seconds_per_call(sessions[i], feed, opt.block_seconds))
        print(f"batch {bs}: unpruned {best[0] * 1e3:.1f} ms, pruned {best[1] * 1e3:.1f} ms, speed-up "
              f"{best[0] / best[1]:.2f}x, FLOPs {flops:.2f}x, efficiency {best[0] / best[1] / flops:.2f}")


def parse_opt():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cfg", default="yolov5s-cls.yaml")
    parser.add_argument("--rate", type=float, default=0.5)
    parser.add_argument("--imgsz", type=int, default=224)
    parser.add_argument("--batch", type=int, nargs="+", default=[1, 16])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--block-seconds", type=float, default=0.5)
    parser.add_argument("--threads", type=int, default=0, help="ONNX Runtime threads (0: as many as PyTorch's)")
    return parser.parse_args()


if __name__ == "__main__":
    torch.set_flush_denormal(True)  # random weights fade into denormals, which CPUs run very slowly
    main(parse_opt())
