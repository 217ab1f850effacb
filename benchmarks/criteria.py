"""Which ranking criterion keeps the most accuracy? Every registered criterion at the same rate, several seeds.

Per seed: a baseline is trained (or reused from an earlier run of this script in --project); every criterion
(and, for data criteria, residual streams scored after the add as well) ranks that baseline, the model is
pruned at --rate, its accuracy is taken right after pruning with BatchNorm recalibrated, and it is then
fine-tuned for --finetune-epochs with the seed's settings. Reported: final-epoch top-1 on val, mean and
spread (min-max) over seeds, and how many channels HRank's average rank alone leaves tied.

    python benchmarks/criteria.py                                  # digits (real, offline), 32 px, seeds 0 1
    python benchmarks/criteria.py --data builtin10 --imgsz 64 --epochs 8 --finetune-epochs 4 --optimizer Adam --lr0 0.001
"""

import argparse
import sys
from copy import deepcopy
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import pandas as pd  # noqa: E402
import torch  # noqa: E402

from classify import rank as rank_cli  # noqa: E402
from classify import train as train_cli  # noqa: E402
from models.criteria import CRITERIA, HRank, get_criterion, recalibrate_bn, register, scoring_points  # noqa: E402
from models.experimental import attempt_load  # noqa: E402
from models.io.ranks import load_scores  # noqa: E402
from models.prune import channel_groups, load_model  # noqa: E402
from models.ranking import tied_fraction  # noqa: E402
from models.yolo import ClassificationModel  # noqa: E402
from utils.dataloaders import create_classification_dataloader  # noqa: E402
from utils.datasets import check_cls_dataset, eval_split  # noqa: E402
from utils.evaluate import validate  # noqa: E402


@register
class HRankWithoutTieBreak(HRank):
    """HRank's average rank alone (the scores before this project's tie-breaker): ties fall to the lower index.
    Registered here only, to measure what the tie-breaker is worth."""

    name, help = "hrank-raw", "average matrix rank only (benchmark)"

    def reduce(self, scores):
        return torch.stack(scores)[..., 0].mean(0)


def variants(names, residual="both"):
    """(label, criterion, residual): every criterion; data criteria also with streams scored after the add."""
    for name in names:
        if residual != "added" or not CRITERIA[name].needs_data:
            yield name, name, "members"
        if CRITERIA[name].needs_data and residual != "members":
            yield f"{name} (added)", name, "added"


def hrank_ties(model, loader, batches):
    """Share of channels tied within their group: by HRank's average rank alone, and with the tie-breaker."""
    hrank = get_criterion("hrank")
    points = scoring_points(channel_groups(model), "members", needs_data=True)
    per_point = hrank.point_scores(model, {n: model.get_submodule(n) for v in points.values() for n in v},
                                   loader, batches)
    raw = {g: torch.stack([per_point[n][:, 0] for n in v]).mean(0) for g, v in points.items()}
    broken = {g: hrank.reduce([per_point[n] for n in v]) for g, v in points.items()}
    share = lambda s: sum(tied_fraction(v) * len(v) for v in s.values()) / sum(len(v) for v in s.values())  # noqa
    return share(raw), share(broken)


def final_top1(results_csv):
    return float(pd.read_csv(results_csv, skipinitialspace=True).iloc[-1]["metrics/accuracy_top1"])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cfg", default="yolov5n-cls.yaml")
    parser.add_argument("--data", default="digits")
    parser.add_argument("--imgsz", type=int, default=32)
    parser.add_argument("--rate", default="0.5")
    parser.add_argument("--epochs", type=int, default=30, help="baseline epochs")
    parser.add_argument("--finetune-epochs", type=int, default=10)
    parser.add_argument("--optimizer", default="SGD")
    parser.add_argument("--lr0", type=float, default=0.01)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--rank-batches", type=int, default=5)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--criteria", nargs="+", default=[c for c in CRITERIA if c != "hrank-raw"], choices=list(CRITERIA))
    parser.add_argument("--residual", default="both", choices=("members", "added", "both"),
                        help="how data criteria score residual streams; both: each criterion twice")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--project", default=str(ROOT / "runs/benchmarks/criteria"))
    opt = parser.parse_args()

    project = Path(opt.project)
    root = check_cls_dataset(opt.data)
    common = dict(data=opt.data, imgsz=opt.imgsz, batch_size=opt.batch_size, workers=opt.workers, device="cpu",
                  optimizer=opt.optimizer, lr0=opt.lr0, project=project, exist_ok=True)
    val_loader = create_classification_dataloader(eval_split(root), imgsz=opt.imgsz, batch_size=128, augment=False,
                                                  workers=0, shuffle=False)
    rows, ties = [], []
    for seed in opt.seeds:
        base_dir = project / f"baseline-s{seed}"
        if not (base_dir / "weights" / "last.pt").exists():  # reuse a baseline from an earlier run
            train_cli.run(cfg=opt.cfg, epochs=opt.epochs, name=base_dir.name, seed=seed, **common)
        baseline = base_dir / "weights" / "last.pt"
        base_model = attempt_load(baseline)
        rows.append({"seed": seed, "criterion": "baseline (unpruned)", "pruned + BN recalibrated": None,
                     "fine-tuned": final_top1(base_dir / "results.csv")})
        train_images = create_classification_dataloader(root / "train", imgsz=opt.imgsz, batch_size=32,
                                                         augment=False, workers=0, shuffle=True, seed=seed)
        ties.append((seed, *hrank_ties(base_model, train_images, opt.rank_batches)))
        for label, criterion, residual in variants(opt.criteria, opt.residual):
            name = f"{criterion}{'-added' if residual == 'added' else ''}-s{seed}"
            ranks = rank_cli.run(weights=baseline, data=opt.data, criterion=criterion, batches=opt.rank_batches,
                                 batch_size=32, imgsz=opt.imgsz, device="cpu", workers=0, seed=seed,
                                 residual=residual, output=project / f"{name}-ranks.pt")
            pruned = load_model(ClassificationModel(opt.cfg, nc=base_model.nc, rate=opt.rate), base_model,
                                load_scores(ranks)[0])
            recalibrated = recalibrate_bn(deepcopy(pruned), train_images, batches=10)
            before = validate(recalibrated, val_loader)[0]
            run = train_cli.run(cfg=opt.cfg, rate=opt.rate, weights=str(baseline), ranks=str(ranks),
                                epochs=opt.finetune_epochs, name=name, seed=seed, **common)
            rows.append({"seed": seed, "criterion": label, "pruned + BN recalibrated": before,
                         "fine-tuned": final_top1(run["results"])})
            pd.DataFrame(rows).to_csv(project / "criteria.csv", index=False)  # partial results survive a stop

    table = pd.DataFrame(rows).groupby("criterion", sort=False).agg(["mean", "min", "max"])
    print(f"\n{opt.cfg} on {opt.data} at {opt.imgsz} px, rate {opt.rate}: baseline {opt.epochs} epochs, fine-tune "
          f"{opt.finetune_epochs} epochs ({opt.optimizer} lr0 {opt.lr0}), seeds {opt.seeds}; final-epoch top-1 on val")
    print(f"{'criterion':<22}{'pruned + BN recal.':>26}{'fine-tuned':>26}")
    for label, r in table.iterrows():
        cells = [f"{r[(c, 'mean')]:.3f} ({r[(c, 'min')]:.3f}-{r[(c, 'max')]:.3f})" if pd.notna(r[(c, "mean")])
                 else "-" for c in ("pruned + BN recalibrated", "fine-tuned")]
        print(f"{label:<22}" + "".join(f"{c:>26}" for c in cells))
    for seed, raw, broken in ties:
        print(f"seed {seed}: channels tied within their group by HRank's average rank {raw:.1%}, "
              f"after the tie-breaker {broken:.1%}")
    print(f"rows: {project / 'criteria.csv'}")


if __name__ == "__main__":
    main()
