"""Accuracy against FLOPs: uniform rates vs allocated widths at the same FLOPs, each fine-tuned the same way.

One baseline is ranked once (--criterion) and its per-group sensitivity measured once (on training images, as
classify/prune.py does). For each uniform --rates r, the allocated plan targets the FLOPs of rate r; both are
pruned from the baseline and fine-tuned for --finetune-epochs with every --seeds. Reported: final-epoch top-1 on
val, mean and spread over seeds, at the FLOPs counted by torch.utils.flop_counter at --imgsz. Writes pareto.csv
(one row per run), pareto_summary.csv and pareto.png to runs/pareto/exp*.

    python benchmarks/pareto.py --weights runs/train-cls/exp/weights/best.pt --data digits --imgsz 32
"""

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import pandas as pd  # noqa: E402
import torch  # noqa: E402

from classify import train as train_cli  # noqa: E402
from models.allocation import SensitivityDrop, allocate  # noqa: E402
from models.costs import CostModel  # noqa: E402
from models.plan import Plan  # noqa: E402
from models.criteria import compute_scores, get_criterion  # noqa: E402
from models.experimental import attempt_load  # noqa: E402
from models.io.ranks import load_scores, save_scores  # noqa: E402
from models.sensitivity import group_sensitivity  # noqa: E402
from models.yolo import cfg_of, input_norm  # noqa: E402
from utils.dataloaders import create_classification_dataloader  # noqa: E402
from utils.datasets import check_cls_dataset  # noqa: E402
from utils.paths import increment_path  # noqa: E402
from utils.plots import plot_pareto  # noqa: E402


def final_top1(save_dir):
    table = pd.read_csv(Path(save_dir) / "results.csv")
    table.columns = [c.strip() for c in table.columns]  # YOLOv5 pads the header with spaces
    return float(table.iloc[-1]["metrics/accuracy_top1"])


def main(opt):
    t0 = time.time()
    save_dir = increment_path(Path(opt.project) / opt.name, mkdir=True)
    model = attempt_load(opt.weights)
    cfg = cfg_of(model, opt.weights)
    root = check_cls_dataset(opt.data)
    if opt.ranks:  # reuse an earlier run's ranking and curves
        ranks, scores = Path(opt.ranks), load_scores(opt.ranks)[0]
    else:
        loader = None
        if get_criterion(opt.criterion).needs_data:
            loader = create_classification_dataloader(root / "train", imgsz=opt.imgsz, batch_size=32, augment=False,
                                                      workers=opt.workers, shuffle=True, seed=0, norm=input_norm(model))
        scores = compute_scores(model, opt.criterion, loader, batches=5)
        ranks = save_scores(save_dir / "ranks.pt", scores, {"criterion": opt.criterion, "source": opt.weights})
    if opt.sensitivity:
        table = pd.read_csv(opt.sensitivity)
    else:
        table = group_sensitivity(model, root, scores, opt.imgsz, 64, images=512, calib_batches=5,
                                  workers=opt.workers, split="train")
    table.to_csv(save_dir / "sensitivity.csv", index=False)
    drop = SensitivityDrop(table, float(table["base_top1"].iloc[0]))
    costs = CostModel(cfg, opt.imgsz, nc=model.nc)

    rows = []
    for r in (float(x) for x in opt.rates.split(",")):
        flops = costs.fraction(Plan.uniform(costs.full, r), "flops")
        plans = {"uniform": Plan.uniform(costs.full, r), "allocated": allocate(costs, flops, "flops", drop)}
        for method, plan in plans.items():
            for seed in (int(s) for s in opt.seeds.split(",")):
                run = train_cli.run(cfg=Plan(plan).yaml(cfg), weights=opt.weights, ranks=str(ranks),
                                    data=opt.data, imgsz=opt.imgsz, epochs=opt.finetune_epochs, seed=seed,
                                    optimizer=opt.optimizer, lr0=opt.lr0, workers=opt.workers, batch_size=64,
                                    project=str(save_dir), name=f"{method}-r{r:g}-s{seed}")
                rows.append({"method": method, "rate": r, "seed": seed, "flops": costs.fraction(plan, "flops"),
                             "params": costs.fraction(plan, "params"), "top1": final_top1(run["save_dir"])})
                pd.DataFrame(rows).to_csv(save_dir / "pareto.csv", index=False)
    runs = pd.DataFrame(rows)
    summary = runs.groupby(["method", "rate"], sort=False).agg(
        flops=("flops", "first"), params=("params", "first"), top1_mean=("top1", "mean"), top1_std=("top1", "std"),
        top1_min=("top1", "min"), top1_max=("top1", "max")).reset_index()
    summary.to_csv(save_dir / "pareto_summary.csv", index=False)
    plot_pareto(summary, save_dir / "pareto.png")
    print(f"\nbaseline {opt.weights}, {opt.finetune_epochs} fine-tune epochs, seeds {opt.seeds}, "
          f"final-epoch top-1 on val ({time.time() - t0:.0f} s)")
    print(summary.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    print(f"saved {save_dir / 'pareto.png'}")


def parse_opt(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", required=True, help="trained classifier to prune")
    parser.add_argument("--data", default="digits")
    parser.add_argument("--imgsz", type=int, default=32)
    parser.add_argument("--criterion", default="hrank")
    parser.add_argument("--rates", default="0.3,0.5,0.7", help="uniform rates; allocation matches their FLOPs")
    parser.add_argument("--ranks", default="", help="scores file to reuse (skips ranking)")
    parser.add_argument("--sensitivity", default="", help="sensitivity.csv to reuse (with --ranks: the same ranking)")
    parser.add_argument("--seeds", default="0,1")
    parser.add_argument("--finetune-epochs", type=int, default=10)
    parser.add_argument("--optimizer", default="SGD")
    parser.add_argument("--lr0", type=float, default=0.01)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--project", default=ROOT / "runs/pareto")
    parser.add_argument("--name", default="exp")
    return parser.parse_args(argv)


if __name__ == "__main__":
    torch.set_num_threads(1)
    main(parse_opt())
