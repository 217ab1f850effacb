"""HRank scoring: one batched SVD on whole (N, C, H, W) tensors vs a per-map `torch.linalg.matrix_rank` loop.

The loop is HRank's original way (one rank per image per channel). Both score the same model on the
same images in one run; the script checks that the average ranks agree (the batched criterion also
computes its tie-breaker from the same singular values) and prints the speed ratio.

    python benchmarks/hrank_speed.py --cfg yolov5s-cls.yaml --imgsz 224 --batch 8
"""

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from models.criteria import get_criterion  # noqa: E402
from models.prune import channel_groups  # noqa: E402
from models.yolo import ClassificationModel  # noqa: E402


def per_map_loop_scores(model, images):
    """HRank's way: matrix_rank of each image's each channel, one call at a time."""
    members = {n: model.get_submodule(n) for g in channel_groups(model) for n in g.members}
    totals = {n: torch.zeros(m.conv.out_channels, dtype=torch.float64) for n, m in members.items()}

    def hook(name):
        def accumulate(module, inputs, output):
            for i in range(output.shape[0]):
                for c in range(output.shape[1]):
                    totals[name][c] += torch.linalg.matrix_rank(output[i, c]).item()
        return accumulate

    handles = [m.register_forward_hook(hook(n)) for n, m in members.items()]
    with torch.no_grad():
        model(images)
    for h in handles:
        h.remove()
    return {n: t / images.shape[0] for n, t in totals.items()}


def batched_scores(model, images):
    """The hrank criterion's per-conv average ranks (column 0 of its scores; column 1 is the tie-breaker)."""
    members = {n: model.get_submodule(n) for g in channel_groups(model) for n in g.members}
    return {n: s[:, 0] for n, s in get_criterion("hrank").point_scores(model, members, [(images, None)], 1).items()}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--cfg", default="yolov5s-cls.yaml")
    parser.add_argument("--imgsz", type=int, default=224)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3, help="timed runs of each (best is kept), after a warm-up")
    opt = parser.parse_args()

    torch.manual_seed(0)
    torch.set_flush_denormal(True)  # randomly initialised nets fade into denormals, which CPUs run very slowly
    model = ClassificationModel(opt.cfg).eval()
    images = torch.rand(opt.batch, 3, opt.imgsz, opt.imgsz)
    runs = {"batched": lambda: batched_scores(model, images),
            "per-map loop": lambda: per_map_loop_scores(model, images)}
    best, scores = {}, {}
    for r in range(opt.repeats + 1):  # run 0 warms up LAPACK and the allocator; runs alternate for fairness
        for name, fn in runs.items():
            t = time.perf_counter()
            scores[name] = fn()
            if r:
                best[name] = min(best.get(name, float("inf")), time.perf_counter() - t)
    same = all(torch.equal(scores["batched"][k], scores["per-map loop"][k]) for k in scores["batched"])
    print(f"{opt.cfg} at {opt.imgsz}, {opt.batch} images, {sum(len(v) for v in scores['batched'].values())} "
          f"channels, {torch.get_num_threads()} threads, best of {opt.repeats}")
    print(f"batched: {best['batched']:.2f} s, per-map loop: {best['per-map loop']:.2f} s, "
          f"speed ratio {best['per-map loop'] / best['batched']:.1f}x, average ranks identical: {same}")


if __name__ == "__main__":
    main()
