"""Which ranking criterion keeps the most accuracy? hrank vs l1 vs bn vs random at the same rate.

One baseline is trained (or given with --weights); each criterion then prunes it at --rate and is
fine-tuned for --finetune-epochs with identical seeds, through classify/prune.py. Accuracy numbers are
deterministic for a given seed; the table also shows accuracy right after pruning (+ BN recalibration).

    python benchmarks/criteria.py                       # yolov5n-cls, built-in data, 64 px: ~3 min on 2 CPU cores
    python benchmarks/criteria.py --rate 0.7 --finetune-epochs 4
"""

import argparse
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from classify import prune as pipeline  # noqa: E402
from classify import train as train_cli  # noqa: E402
from models.prune import CRITERIA  # noqa: E402
from utils.datasets import DEFAULT_DATA  # noqa: E402


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--weights", default="", help="trained classifier; '' trains a baseline")
    parser.add_argument("--cfg", default=pipeline.DEMO_CFG)
    parser.add_argument("--data", default=DEFAULT_DATA)
    parser.add_argument("--rate", default="0.5")
    parser.add_argument("--epochs", type=int, default=8, help="baseline epochs")
    parser.add_argument("--finetune-epochs", type=int, default=4)
    parser.add_argument("--imgsz", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--workers", type=int, default=2)
    opt = parser.parse_args()

    project = Path(tempfile.mkdtemp(prefix="criteria-"))
    common = dict(data=opt.data, imgsz=opt.imgsz, batch_size=opt.batch_size, workers=opt.workers, device="cpu")
    weights = opt.weights or train_cli.run(cfg=opt.cfg, epochs=opt.epochs, project=project, name="baseline",
                                           **common)["best"]
    table = {}
    for criterion in CRITERIA:
        rows = pipeline.run(weights=str(weights), rate=opt.rate, criterion=criterion,
                            finetune_epochs=opt.finetune_epochs, project=project, name=criterion, **common)["summary"]
        table[criterion] = {r["model"]: r["top1"] for r in rows}
    stages = list(next(iter(table.values())))
    print(f"\ntop-1 on {opt.data} val, {opt.cfg} at rate {opt.rate}, {opt.finetune_epochs} fine-tune epochs "
          f"(runs in {project})")
    print(f"{'criterion':<10}" + "".join(f"{s:>28}" for s in stages))
    for criterion, accs in table.items():
        print(f"{criterion:<10}" + "".join(f"{accs[s]:>28.3f}" for s in stages))


if __name__ == "__main__":
    main()
