"""Prune a YOLO classifier (YOLOv5, or ultralytics YOLOv8/YOLO11/YOLO26) end to end: baseline → filter ranks →
pruned fine-tune → before/after summary.

Usage:
    python classify/prune.py                                   # demo: yolov5n-cls on the built-in data, CPU-friendly
    python classify/prune.py --weights yolov5s-cls.pt --cfg yolov5s-cls.yaml --data imagenette160 \
        --rate "[0.]+[0.3]*8+[0.]" --criterion hrank --epochs 20 --imgsz 224

Without --weights a baseline is trained first (on --data, --epochs). The pruned model is fine-tuned distilling from
the baseline (--teacher '' for plain cross-entropy), its pruned filters fading out over the first half of the
fine-tune before they are cut (--fade-epochs), and so is the unpruned baseline for the same extra epochs: the
summary compares the two, so what it reports is the cost of pruning, not the gain of extra epochs. Last, the pruned
architecture is trained from scratch for --epochs + --finetune-epochs (--no-scratch skips it): the summary says
whether pruning paid on this data. The run folder holds baseline/, ranks.pt, pruned/, baseline-ft/, scratch/ and
summary.csv. Each step is also its own command: classify/train.py, classify/rank.py.
"""

import argparse
import sys
from copy import deepcopy
from pathlib import Path

FILE = Path(__file__).resolve()
ROOT = FILE.parents[1]
if str(ROOT) not in sys.path:
    sys.path.append(str(ROOT))

import torch  # noqa: E402

from classify import rank as rank_cli  # noqa: E402
from classify import sensitivity as sensitivity_cli  # noqa: E402
from classify import train as train_cli  # noqa: E402
from classify import val as val_cli  # noqa: E402
from models.budget import (check_reachable, chosen_target, drop_predictor, plan_for_target,  # noqa: E402
                           planned_yaml, read_sensitivity)
from models.criteria import CRITERIA, DEFAULT_CRITERION, recalibrate_bn  # noqa: E402
from models.experimental import attempt_load, check_classifier  # noqa: E402
from models.io.ranks import load_scores  # noqa: E402
from models.latency import check_latency_options  # noqa: E402
from models.prune import load_model, needs_scores  # noqa: E402
from models.yolo import ClassificationModel, cfg_of, input_norm, load_yaml, with_plan  # noqa: E402
from utils.atomic import write_text_atomic  # noqa: E402
from utils.cli import (WORKERS_HELP, HelpFormatter, add_target_options, check_at_least, check_img_size,  # noqa: E402
                       check_writable, model_imgsz, print_args, run_cli)
from utils.dataloaders import create_classification_dataloader  # noqa: E402
from utils.datasets import DEFAULT_DATA, check_cls_dataset, class_names, eval_split  # noqa: E402
from utils.device import select_device  # noqa: E402
from utils.distill import DISTILL_ALPHA, DISTILL_T, check_distillation  # noqa: E402
from utils.hyp import load_hyp  # noqa: E402
from utils.log import LOGGER, colorstr, nested  # noqa: E402
from utils.model_info import count_params, model_gflops  # noqa: E402
from utils.paths import increment_path  # noqa: E402
from utils.plots import plot_sensitivity  # noqa: E402
from utils.profiling import median_latency  # noqa: E402


def _accuracy(model, loader):
    top1, top5, _ = val_cli.run(model=model, dataloader=loader)
    return top1, top5


LATENCY_BATCH = 16  # images per timed CPU forward in the summary


# The two accuracy rules of the summary, as its footnote states them.
RULES = ("last: the weights (EMA) of the final epoch", "best: best.pt, the epoch with the highest top-1 on this same "
         "val split (picked on the numbers it reports: optimistic)")


def trained_stage(result, loader, dev, distilled):
    """A summary stage for a training run (train.run's result): best.pt and the last epoch's weights, each
    validated on `loader`."""
    best, last = (attempt_load(result[k], device=dev) for k in ("best", "last"))
    return best, _accuracy(best, loader), _accuracy(last, loader), distilled


def untrained_stage(model, loader, distilled="-"):
    """A summary stage for a model not trained in this run: one accuracy stands for both rules."""
    acc = _accuracy(model, loader)
    return model, acc, acc, distilled


def summary_rows(stages, imgsz):
    """Parameters, GFLOPs, CPU latency (ms per batch of LATENCY_BATCH, one interleaved run), accuracy by both RULES,
    and whether the row was trained with distillation ('yes'/'no'; '-' for rows not trained here).

    stages: {row name: (model, (top1, top5) of best, (top1, top5) of last, distilled)}.
    """
    models = [stage[0].cpu().eval() for stage in stages.values()]
    latency = median_latency(models, torch.randn(LATENCY_BATCH, 3, imgsz, imgsz), repeats=10)
    rows = []
    for (name, (model, best, last, distilled)), t in zip(stages.items(), latency):
        rows.append({"model": name, "parameters": count_params(model), "GFLOPs": model_gflops(model, imgsz),
                     "cpu_ms": t * 1e3, "top1_last": last[0], "top1_best": best[0], "top5_last": last[1],
                     "top5_best": best[1], "distilled": distilled})
    return rows


def log_summary(rows, save_dir, reference, pruned, scratch=None, split="val"):
    """Log the table and the cost of pruning: row `pruned` against row `reference` (trained as long) and, when given,
    what pruning gained over row `scratch` (the pruned architecture trained from scratch as long)."""
    import pandas as pd

    table = pd.DataFrame(rows).set_index("model")
    write_text_atomic(save_dir / "summary.csv", table.to_csv())
    width = max(28, max(len(r["model"]) for r in rows) + 2)
    lines = [f"{'model':<{width}}{'params':>11}{'GFLOPs':>8}{f'CPU ms/{LATENCY_BATCH}':>12}{'top1 last':>11}"
             f"{'top1 best':>11}{'top5 last':>11}{'distilled':>11}"]
    for r in rows:
        lines.append(f"{r['model']:<{width}}{r['parameters']:>11,}{r['GFLOPs']:>8.3f}{r['cpu_ms']:>12.1f}"
                     f"{r['top1_last']:>11.3f}{r['top1_best']:>11.3f}{r['top5_last']:>11.3f}{r['distilled']:>11}")
    lines.append(f"top1/top5 on {split}/; " + "; ".join(RULES) + ". Untrained rows: one number for both.")
    base, last = (next(r for r in rows if r["model"] == name) for name in (reference, pruned))
    lines.append(f"cost of pruning ('{pruned}' vs '{reference}', trained as long): "
                 f"{last['parameters'] / base['parameters']:.1%} parameters, {last['GFLOPs'] / base['GFLOPs']:.1%} "
                 f"GFLOPs, {base['cpu_ms'] / last['cpu_ms']:.2f}x faster (CPU), top1 (last epoch) "
                 f"{last['top1_last'] - base['top1_last']:+.3f}")
    if scratch is not None:
        new = next(r for r in rows if r["model"] == scratch)
        gain = last["top1_last"] - new["top1_last"]
        lines.append(f"gain of pruning ('{pruned}' vs '{scratch}'): top1 (last epoch) {gain:+.3f}"
                     + ("" if gain > 0 else ": on this data, training the small architecture from scratch did as well"))
    LOGGER.info("\n" + colorstr("Pruning summary") + "\n" + "\n".join(lines))
    LOGGER.info(f"Results saved to {colorstr('bold', save_dir)}")


DEMO_CFG = "yolov5n-cls.yaml"  # small enough to train a baseline in a minute on 2 CPU cores
DEMO_IMGSZ = 64  # the built-in data's images are 64 px; a --weights model runs at its own training size


DEFAULT_RATE = "0.5"  # without --rate or --target-*
FADE_SHARE = 1 / 2  # default --fade-epochs: this share of the fine-tune (benchmarks/recipes.py, README 'Pruning that pays')


def default_fade_epochs(finetune_epochs):
    return max(1, round(finetune_epochs * FADE_SHARE))


def allocate(cfg, base_model, scores, target, data_root, imgsz, batch_size, workers, seed, save_dir, sensitivity="",
             latency=None):
    """A model YAML dict with the widths allocated for `target` = (metric, fraction): by sensitivity curves measured on
    the baseline (on training images, so the widths are not chosen on the images the summary reports) or read from
    `sensitivity`; saves sensitivity.csv/.png and plan.yaml in save_dir. latency: plan_for_target's runtime, batch
    and cache_dir for --target-latency."""
    import yaml

    if sensitivity:
        table = sensitivity
    else:
        LOGGER.info("sensitivity: top-1 with each channel group pruned alone, at several rates, on 512 training "
                    "images (BatchNorm re-estimated); the widths are allocated by it")
        table = sensitivity_cli.group_sensitivity(base_model, data_root, scores, imgsz, batch_size, images=512,
                                                  calib_batches=5, workers=workers, seed=seed, split="train")
        write_text_atomic(save_dir / "sensitivity.csv", table.to_csv(index=False))
        plot_sensitivity(table, save_dir / "sensitivity.png")
    device = next(base_model.parameters()).device
    widths = plan_for_target(cfg, *target, imgsz, nc=base_model.nc, drop=drop_predictor(sensitivity=table),
                             device=device, **(latency or {}))
    plan_cfg = planned_yaml(cfg, widths)
    write_text_atomic(save_dir / "plan.yaml", yaml.safe_dump(plan_cfg, sort_keys=False))
    return plan_cfg


@nested()  # the train and rank commands it runs stay quiet: no option dumps or next-step hints of their own
def run(cfg="", weights="", data=DEFAULT_DATA, rate=None, criterion=DEFAULT_CRITERION, rank_batches=5,
        epochs=8, finetune_epochs=8, batch_size=64, imgsz=None, device="", workers=2, cache="ram",
        project=ROOT / "runs/prune-cls", name="exp", exist_ok=False, seed=0, target_flops=None, target_params=None,
        target_latency=None, sensitivity="", teacher=None, distill_alpha=DISTILL_ALPHA, distill_t=DISTILL_T, hyp="",
        fade_epochs=None, no_scratch=False, plan="", latency_runtime=None, latency_batch=1):
    """Run the pipeline; returns {'save_dir', 'baseline', 'ranks', 'pruned', 'baseline_ft', 'scratch', 'summary'}.

    teacher: None distils the fine-tunes from the baseline, '' turns distillation off, a path distils from it.
    fade_epochs: None fades the pruned filters out over FADE_SHARE of the fine-tune; 0 cuts them at once.
    no_scratch: skip the scratch row (the pruned architecture trained from scratch as long as baseline + fine-tune).
    plan: 'ultralytics' prunes only widths ultralytics' YAML can say (see classify/train.py --plan).
    """
    fade_epochs = default_fade_epochs(finetune_epochs) if fade_epochs is None else fade_epochs
    if not 0 <= fade_epochs <= finetune_epochs:
        raise ValueError(f"--fade-epochs must be between 0 and --finetune-epochs ({finetune_epochs}), not {fade_epochs}")
    for flag, value, minimum in (("--epochs", epochs, 1), ("--finetune-epochs", finetune_epochs, 1),
                                 ("--rank-batches", rank_batches, 1), ("--batch-size", batch_size, 1),
                                 ("--workers", workers, 0)):
        check_at_least(flag, value, minimum)
    imgsz = None if imgsz is None else check_img_size(imgsz)
    target = chosen_target(target_flops, target_params, target_latency, rate)
    latency_runtime, latency_batch = check_latency_options(latency_runtime, latency_batch)
    latency = {"runtime": latency_runtime, "batch": latency_batch, "cache_dir": project}
    rate = None if target else (rate if rate is not None else DEFAULT_RATE)
    if sensitivity:  # a missing file or one that is not a sensitivity table fails before any work
        read_sensitivity(sensitivity)
    source = check_classifier(attempt_load(weights), weights, "classify/prune.py") if weights else None
    imgsz = model_imgsz(imgsz, source) if source is not None else imgsz or DEMO_IMGSZ
    cfg = cfg or (cfg_of(source, weights) if source is not None else DEMO_CFG)
    if plan:  # the rule travels in the YAML: every model built from it (and every checkpoint) keeps it
        cfg = with_plan(load_yaml(cfg), plan)
    if not target and not needs_scores(ClassificationModel(cfg, rate=rate)):  # a bad --cfg or --rate fails here
        raise ValueError("--rate is 0 everywhere: nothing to prune; give a rate such as 0.5 or '[0.]+[0.3]*8+[0.]'")
    if target:  # a budget no plan reaches fails now, not after training, ranking and sensitivity
        check_reachable(cfg, *target, imgsz, len(class_names(check_cls_dataset(data))))
    load_hyp(hyp)  # a bad --hyp or distillation setting fails here too, before any work
    check_distillation(distill_alpha, distill_t)
    save_dir = increment_path(Path(check_writable(Path(project) / name)), exist_ok=exist_ok, mkdir=True)
    steps = 5 if no_scratch else 6
    common = dict(data=data, batch_size=batch_size, imgsz=imgsz, device=device, workers=workers, cache=cache,
                  seed=seed, project=save_dir, exist_ok=True, hyp=hyp)

    trained_baseline = None
    if weights:
        baseline = weights
        LOGGER.info(f"\n{colorstr(f'1/{steps} baseline:')} {weights}")
    else:
        cfg_name = cfg.get("yaml_file", "the model") if isinstance(cfg, dict) else cfg
        LOGGER.info(f"\n{colorstr(f'1/{steps} baseline:')} training {cfg_name} for {epochs} epochs")
        trained_baseline = train_cli.run(cfg=cfg, epochs=epochs, name="baseline", **common)
        baseline = trained_baseline["best"]

    LOGGER.info(f"\n{colorstr(f'2/{steps} ranks:')} {criterion} on {data}")
    ranks = rank_cli.run(weights=baseline, data=data, criterion=criterion, batches=rank_batches,
                         batch_size=min(batch_size, 32), imgsz=imgsz, device=device, workers=workers,
                         output=save_dir / "ranks.pt", seed=seed)

    plan = f"widths for --target-{target[0]} {target[1]:g}" if target else f"rate {rate}"
    LOGGER.info(f"\n{colorstr(f'3/{steps} prune:')} {plan}")
    dev = select_device(device, batch_size=batch_size)
    base_model = attempt_load(baseline, device=dev)
    scores = load_scores(ranks)[0]
    root = check_cls_dataset(data)
    if target:
        cfg = allocate(cfg, base_model, scores, target, root, imgsz, batch_size, workers, seed, save_dir, sensitivity,
                       latency)
    pruned = load_model(ClassificationModel(cfg, nc=base_model.nc, rate=rate).to(dev), base_model, scores)
    norm = input_norm(base_model)
    loader = create_classification_dataloader(eval_split(root), imgsz=imgsz, batch_size=batch_size, augment=False,
                                              workers=workers, shuffle=False, norm=norm)
    before = {"baseline": (trained_stage(trained_baseline, loader, dev, "no") if trained_baseline
                           else untrained_stage(base_model, loader)),
              f"pruned ({plan})": untrained_stage(pruned, loader)}
    train_images = create_classification_dataloader(root / "train", imgsz=imgsz, batch_size=batch_size,
                                                    augment=False, workers=workers, shuffle=True, seed=seed, norm=norm)
    recalibrated = recalibrate_bn(deepcopy(pruned), train_images, batches=10)
    before["pruned + BN recalibrated"] = untrained_stage(recalibrated, loader)

    teacher = str(baseline) if teacher is None else teacher
    # both fine-tunes alike: distilled, and a cosine schedule (benchmarks/recipes.py: +0.3 for the pruned model)
    finetune = dict(teacher=teacher, distill_alpha=distill_alpha, distill_t=distill_t, cos_lr=True)
    distilled = "yes" if teacher else "no"
    how = f"distilling from {teacher}" if teacher else "plain cross-entropy"
    fading = f", the pruned filters fading out over the first {fade_epochs}" if fade_epochs else ""
    LOGGER.info(f"\n{colorstr(f'4/{steps} fine-tune:')} pruned model, {finetune_epochs} epochs{fading}, {how}")
    result = train_cli.run(cfg=cfg, rate=rate, weights=str(baseline), ranks=str(ranks), epochs=finetune_epochs,
                           name="pruned", fade_epochs=fade_epochs, **finetune, **common)
    # The reference: the unpruned baseline trained the same extra epochs the same way, so that the summary's
    # difference is what pruning costs, not what more epochs gain.
    LOGGER.info(f"\n{colorstr(f'5/{steps} reference:')} unpruned baseline, the same {finetune_epochs} epochs, {how}")
    control = train_cli.run(cfg="", weights=str(baseline), epochs=finetune_epochs,  # the baseline's architecture
                            name="baseline-ft", **finetune, **common)
    more = f"+ {finetune_epochs} epoch{'s' if finetune_epochs != 1 else ''}"
    reference, final = f"baseline {more}", f"pruned {more}"
    stages = {**before, reference: trained_stage(control, loader, dev, distilled),
              final: trained_stage(result, loader, dev, distilled)}
    scratch = scratch_row = None
    if not no_scratch:  # what a user gets without pruning: the same small architecture, trained as long, no teacher
        total = epochs + finetune_epochs  # with --weights, --epochs stands for the baseline's
        LOGGER.info(f"\n{colorstr('6/6 scratch:')} the pruned architecture from scratch, {total} epochs")
        scratch = train_cli.run(cfg=stages[final][0].yaml, epochs=total, name="scratch", **common)
        scratch_row = f"pruned architecture from scratch ({total} epochs)"
        stages[scratch_row] = trained_stage(scratch, loader, dev, "no")
    rows = summary_rows(stages, imgsz)
    log_summary(rows, save_dir, reference, final, scratch_row, split=eval_split(root).name)
    return {"save_dir": save_dir, "baseline": baseline, "ranks": ranks, "pruned": result["best"],
            "baseline_ft": control["best"], "scratch": scratch["best"] if scratch else None, "summary": rows}


def parse_opt(known=False):
    parser = argparse.ArgumentParser(description="Prune a YOLO classifier (YOLOv5, YOLOv8, YOLO11, YOLO26) end to end",
                                     formatter_class=HelpFormatter)
    parser.add_argument("--cfg", type=str, default="", help=f"model YAML (default: that of --weights, else {DEMO_CFG})")
    parser.add_argument("--weights", "--model", type=str, default="", help="trained classifier/detector; '' trains a baseline first")
    parser.add_argument("--data", type=str, default=DEFAULT_DATA, help="dataset name or ImageFolder root")
    parser.add_argument("--rate", type=str, default=None,
                        help=f"compress rate(s): 0.5, a list, or '[0.]+[0.3]*8+[0.]' (default {DEFAULT_RATE})")
    add_target_options(parser, "instead of --rate: allocate widths to this fraction of the unpruned FLOPs (0-1]",
                       "sensitivity.csv to allocate by (default: measured on the baseline in this run)")
    parser.add_argument("--criterion", type=str, default=DEFAULT_CRITERION, choices=CRITERIA,
                        help="filter ranking criterion (see classify/rank.py --help)")
    parser.add_argument("--rank-batches", type=int, default=5, help="training batches scored by data criteria")
    parser.add_argument("--epochs", type=int, default=8,
                        help="baseline epochs (without --weights; with them, the baseline's epochs for the scratch row)")
    parser.add_argument("--finetune-epochs", type=int, default=8, help="fine-tune epochs of the pruned model")
    parser.add_argument("--batch-size", type=int, default=64, help="total batch size")
    parser.add_argument("--imgsz", "--img", "--img-size", type=int, default=None,
                        help=f"image size (pixels); default: that --weights was trained at, else {DEMO_IMGSZ}")
    parser.add_argument("--device", default="", help="cuda device, i.e. 0 or cpu")
    parser.add_argument("--workers", type=int, default=2, help=WORKERS_HELP)
    parser.add_argument("--cache", type=str, nargs="?", const="ram", default="ram", choices=("ram", "disk"),
                        help="cache decoded images in 'ram' or on 'disk' (as <image>.npy)")
    parser.add_argument("--project", default=ROOT / "runs/prune-cls", help="save to project/name")
    parser.add_argument("--name", default="exp", help="save to project/name")
    parser.add_argument("--exist-ok", action="store_true", help="existing project/name ok, do not increment")
    parser.add_argument("--seed", type=int, default=0, help="global seed")
    parser.add_argument("--teacher", type=str, default=None,
                        help="distil the fine-tunes from this classifier; default: the baseline; '' = plain cross-entropy")
    parser.add_argument("--distill-alpha", type=float, default=DISTILL_ALPHA, help="weight of the teacher term")
    parser.add_argument("--distill-t", type=float, default=DISTILL_T, help="distillation temperature")
    parser.add_argument("--hyp", type=str, default="", help="augmentation and loss settings YAML (classify/train.py --hyp)")
    parser.add_argument("--fade-epochs", type=int, default=None,
                        help="fine-tune epochs over which the pruned filters fade out before they are cut "
                             f"(default: {FADE_SHARE:g} of --finetune-epochs, at least 1; 0 cuts them at once)")
    parser.add_argument("--plan", type=str, default="", choices=("", "ultralytics"),
                        help="'ultralytics': prune only widths ultralytics' YAML can say, so that "
                             "YOLO(exported file).train() keeps the pruned model (see classify/train.py)")
    parser.add_argument("--no-scratch", action="store_true",
                        help="skip the scratch row (the pruned architecture trained from scratch as long)")
    return parser.parse_known_args()[0] if known else parser.parse_args()


def main(opt):
    print_args(vars(opt))
    return run(**vars(opt))


if __name__ == "__main__":
    run_cli(main, parse_opt())
