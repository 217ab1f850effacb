"""Top-1 before and after pruning at several budgets, over seeds: classify/prune.py run per seed and rate.

Per seed, the first run trains the baseline (--epochs) and every run prunes it at one --rates value, fine-tunes the
pruned model and, as the reference, the unpruned baseline for the same --finetune-epochs (both distilled from the
baseline, classify/prune.py's defaults). Writes budgets.csv (every summary row of every run) and prints one
markdown table: parameters, GFLOPs, CPU latency, top-1 mean (min-max over seeds) per row. Latency comes from each
run's own interleaved measurement: compare it within a run, on an otherwise idle machine.

    python benchmarks/prune_budgets.py --cfg yolo11n-cls.yaml --data digits --imgsz 32 --epochs 30 --finetune-epochs 15
"""

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import pandas as pd  # noqa: E402

from classify import prune as prune_cli  # noqa: E402
from utils.paths import increment_path  # noqa: E402


def runs(opt, save_dir):
    """Every summary row of every (seed, rate) run, tagged with both."""
    rows = []
    for seed in opt.seeds:
        baseline = ""
        for rate in opt.rates:
            result = prune_cli.run(cfg=opt.cfg, weights=baseline, data=opt.data, rate=str(rate), epochs=opt.epochs,
                                   finetune_epochs=opt.finetune_epochs, imgsz=opt.imgsz, workers=opt.workers,
                                   project=save_dir, name=f"seed{seed}-rate{rate}", seed=seed, hyp=opt.hyp)
            baseline = str(result["baseline"])  # later rates prune the same baseline
            rows += [{**r, "seed": seed, "rate": rate} for r in result["summary"]]
    return pd.DataFrame(rows)


def markdown(table):
    """One line per (rate, row): sizes of the first seed, last-epoch top-1 as mean (min-max) over seeds."""
    lines = ["| rate | model | parameters | GFLOPs | CPU ms/16 | top-1, last epoch: mean (min–max) |",
             "|---|---|---|---|---|---|"]
    for (rate, model), g in table.groupby(["rate", "model"], sort=False):
        t = g["top1_last"]
        lines.append(f"| {rate} | {model} | {int(g['parameters'].iloc[0]):,} | {g['GFLOPs'].iloc[0]:.3f} | "
                     f"{g['cpu_ms'].min():.1f} | {t.mean():.3f} ({t.min():.3f}–{t.max():.3f}) |")
    return "\n".join(lines)


def main(opt):
    t0 = time.time()
    save_dir = increment_path(Path(opt.project) / opt.name, mkdir=True)
    table = runs(opt, save_dir)
    table.to_csv(save_dir / "budgets.csv", index=False)
    print(markdown(table))
    print(f"{len(opt.seeds)} seeds x {len(opt.rates)} rates in {time.time() - t0:.0f} s; {save_dir / 'budgets.csv'}")


def parse_opt():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cfg", default="yolo11n-cls.yaml", help="model YAML (YOLOv5 or ultralytics name)")
    parser.add_argument("--data", default="digits", help="dataset name or ImageFolder root")
    parser.add_argument("--rates", type=float, nargs="+", default=[0.25, 0.5], help="uniform compress rates")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--epochs", type=int, default=30, help="baseline epochs")
    parser.add_argument("--finetune-epochs", type=int, default=15)
    parser.add_argument("--imgsz", type=int, default=32)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--hyp", default="", help="classify/train.py --hyp file")
    parser.add_argument("--project", default=ROOT / "runs/budgets")
    parser.add_argument("--name", default="exp")
    return parser.parse_args()


if __name__ == "__main__":
    main(parse_opt())
