"""Unpruned, pruned and pruned + INT8 as deployed: ONNX Runtime on the CPU, latency and top-1 of each file.

For each --weights pair (unpruned, pruned), export.py writes the FP32 ONNX files and the pruned model's INT8 one
(static quantization calibrated on --data's training images); each file is validated by classify/val.py on --data
and timed in ONNX Runtime with benchmarks/prune_latency.py's method (blocks of forwards per file, alternating order
over --rounds rounds, minimum and median with the spread). Speed-ups are ratios within one run: nothing else may
run meanwhile.

    python benchmarks/int8.py --weights base.pt pruned.pt --data digits --batch 1 16
"""

import argparse
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

import export  # noqa: E402
from benchmarks.prune_latency import rounds_of  # noqa: E402
from classify import val  # noqa: E402
from utils.log import LOGGER  # noqa: E402
from utils.onnx_model import OnnxClassifier  # noqa: E402


def exported_files(weights, data, batch, work, imgsz=None):
    """{row: ONNX file} for the unpruned and pruned checkpoints at `batch` (the pruned one also as INT8), at imgsz
    (None: each model's training size)."""
    files = {}
    for row, w in zip(("unpruned", "pruned"), weights):
        copy = Path(work) / f"{row}-b{batch}.pt"
        shutil.copy(w, copy)  # export writes beside its --weights: keep the user's folder clean
        out = export.run(weights=copy, include=["onnx"], batch_size=batch, int8=row == "pruned", data=data,
                         imgsz=imgsz)
        files[row] = out[0]
        if row == "pruned":
            files["pruned + INT8"] = out[1]
    return files


def main(opt):
    rows = {}
    with tempfile.TemporaryDirectory() as work:
        for batch in opt.batch:
            files = exported_files(opt.weights, opt.data, batch, work, opt.imgsz)
            if batch == opt.batch[0]:  # top-1 does not depend on the batch the file was exported for
                for row, f in files.items():
                    rows[row] = {"top1": val.run(weights=f, data=opt.data, workers=0, project=work, name=row)[0]}
            sessions = {row: OnnxClassifier(f, threads=opt.threads).session for row, f in files.items()}
            size = OnnxClassifier(files["pruned"]).size
            x = torch.rand(batch, 3, *size).numpy()
            fns = [lambda images, s=s: s.run(None, {"images": images}) for s in sessions.values()]
            times = rounds_of(fns, x, opt.rounds, repeats=10)
            for i, row in enumerate(sessions):
                series = [t[i] for t in times]
                spread = max(t[0] / t[i] for t in times) / min(t[0] / t[i] for t in times)
                rows[row][f"b{batch}"] = (min(series), statistics.median(series), spread)
    LOGGER.info("")
    LOGGER.info("| model | top-1 | " + " | ".join(f"ms, batch {b} (speed-up: min / median, spread)"
                                                  for b in opt.batch) + " |")
    LOGGER.info("| --- | --- | " + " | ".join("---" for _ in opt.batch) + " |")
    for row, r in rows.items():
        cells = []
        for b in opt.batch:
            best, med, spread = r[f"b{b}"]
            base_best, base_med, _ = rows["unpruned"][f"b{b}"]
            cells.append(f"{best * 1e3:.3f} ({base_best / best:.2f}x / {base_med / med:.2f}x, {spread:.2f})")
        LOGGER.info(f"| {row} | {r['top1']:.3f} | " + " | ".join(cells) + " |")


def parse_opt(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", nargs=2, required=True, help="the unpruned and the pruned checkpoint")
    parser.add_argument("--data", required=True, help="dataset: validation, and INT8 calibration images")
    parser.add_argument("--batch", nargs="+", type=int, default=[1, 16])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--imgsz", type=int, default=None,
                        help="export (and validate) at this size; default: each model's training size")
    parser.add_argument("--threads", type=int, default=0, help="ONNX Runtime intra-op threads (0: its default)")
    return parser.parse_args(argv)


if __name__ == "__main__":
    main(parse_opt())
