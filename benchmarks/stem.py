"""Is YOLOv5's 6x6 stride-2 stem faster in ONNX Runtime when rewritten as space-to-depth + 3x3 stride 1?

The rewrite is exact: every 2x2 block of the padded image folds into 12 channels, and tap (2i + a, 2j + b) of the
6x6 kernel becomes tap (i, j) of input channel (2a + b)·3 + c of a 3x3 kernel (ONNX's SpaceToDepth order). It is
what issue 19 asked to try for export; measured here on whole exported models (BatchNorm folded, as export.py
writes them), timed by prune_latency.py's method. It measured slower, so export.py does not use it (README).

    python benchmarks/stem.py --cfg yolov5s-cls.yaml --rate 0 0.5 --imgsz 224 --batch 1 16
"""

import argparse
import sys
import tempfile
from copy import deepcopy
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from benchmarks.prune_latency import ratios, rounds_of  # noqa: E402
from export import export_onnx  # noqa: E402
from models.yolo import ClassificationModel  # noqa: E402


class SpaceToDepthConv(nn.Module):
    """pad → 2x2 space-to-depth → stride-1 conv with kernel k/2: the outputs of `conv` (stride 2, even kernel k,
    no groups or dilation) on inputs of even height and width."""

    def __init__(self, conv):
        super().__init__()
        k, c_out, c_in = conv.kernel_size[0], conv.out_channels, conv.in_channels
        if conv.stride != (2, 2) or k % 2 or conv.kernel_size[1] != k or conv.groups != 1 or conv.dilation != (1, 1):
            raise ValueError(f"not a stride-2 convolution with an even square kernel: {conv}")
        self.pad = conv.padding[0]
        self.conv = nn.Conv2d(4 * c_in, c_out, k // 2, 1, 0, bias=conv.bias is not None)
        w = conv.weight.detach().view(c_out, c_in, k // 2, 2, k // 2, 2).permute(0, 3, 5, 1, 2, 4)
        self.conv.weight.data = w.reshape(c_out, 4 * c_in, k // 2, k // 2).contiguous()
        if conv.bias is not None:
            self.conv.bias.data = conv.bias.detach().clone()

    def forward(self, x):
        x = F.pad(x, [self.pad] * 4)
        n, c, h, w = x.shape
        x = x.view(n, c, h // 2, 2, w // 2, 2).permute(0, 3, 5, 1, 2, 4).reshape(n, 4 * c, h // 2, w // 2)
        return self.conv(x)


def rewritten(fused):
    """A copy of a fused YOLOv5 classifier whose stem conv is the space-to-depth form."""
    model = deepcopy(fused)
    model.model[0].conv = SpaceToDepthConv(model.model[0].conv)
    return model


def session(model, x, folder, name):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    file = export_onnx(model, x, Path(folder) / f"{name}.onnx")
    s = ort.InferenceSession(str(file), options, providers=["CPUExecutionProvider"])
    return lambda images: s.run(None, {"images": images.numpy()})


def main(opt):
    torch.manual_seed(0)
    print(f"{opt.cfg} at {opt.imgsz} px, ONNX Runtime, {torch.get_num_threads()} threads, {opt.rounds} rounds")
    print(f"{'rate':>5}{'batch':>6}{'6x6 ms':>9}{'s2d ms':>9}{'s2d speed-up':>14}{'median':>8}{'spread':>8}")
    for rate in opt.rate:
        fused = ClassificationModel(opt.cfg, rate=rate).eval().fuse()
        other = rewritten(fused)
        for bs in opt.batch:
            x = torch.randn(bs, 3, opt.imgsz, opt.imgsz)
            with tempfile.TemporaryDirectory() as tmp:
                fns = [session(fused, x, tmp, "stem6x6"), session(other, x, tmp, "s2d")]
            times = rounds_of(fns, x, opt.rounds, opt.repeats, opt.block_seconds)
            best, median, spread, _ = ratios(times)
            print(f"{rate:>5}{bs:>6}{min(t[0] for t in times) * 1e3:>9.2f}{min(t[1] for t in times) * 1e3:>9.2f}"
                  f"{best:>13.2f}x{median:>7.2f}x{spread:>8.2f}")


def parse_opt():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cfg", default="yolov5s-cls.yaml", help="a YOLOv5 classifier YAML (6x6 stride-2 stem)")
    parser.add_argument("--rate", type=float, nargs="+", default=[0.0, 0.5])
    parser.add_argument("--imgsz", type=int, default=224)
    parser.add_argument("--batch", type=int, nargs="+", default=[1, 16])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--block-seconds", type=float, default=0.3)
    return parser.parse_args()


if __name__ == "__main__":
    torch.set_flush_denormal(True)
    main(parse_opt())
