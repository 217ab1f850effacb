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

from classify import train as train_cli  # noqa: E402
from models.allocation import drop_predictor  # noqa: E402
from models.budget import check_reachable, chosen_target, plan_for_target  # noqa: E402
from models.criteria import CRITERIA, DEFAULT_CRITERION, recalibrate_bn  # noqa: E402
from models.experimental import attempt_load, check_classifier  # noqa: E402
from models.latency import check_latency_options  # noqa: E402
from models.prune import load_model, needs_scores  # noqa: E402
from models.ranking import rank_and_save, ranking_model  # noqa: E402
from models.sensitivity import group_sensitivity, read_sensitivity  # noqa: E402
from models.yolo import ClassificationModel, cfg_of, input_norm, load_yaml, with_plan  # noqa: E402
from utils.atomic import write_text_atomic  # noqa: E402
from utils.cli import (HelpFormatter, check_at_least, check_img_size, check_writable, model_imgsz,  # noqa: E402
                       print_args, run_cli)
from utils.dataloaders import create_classification_dataloader  # noqa: E402
from utils.datasets import DEFAULT_DATA, check_cls_dataset, class_names, eval_split  # noqa: E402
from utils.device import select_device  # noqa: E402
from utils.evaluate import validate  # noqa: E402
from utils.distill import DISTILL_ALPHA, DISTILL_T, check_distillation  # noqa: E402
from utils.hyp import load_hyp  # noqa: E402
from utils.log import LOGGER, colorstr, nested  # noqa: E402
from utils.model_info import count_params, model_gflops  # noqa: E402
from utils.options import (add_batch_size, add_cache, add_cfg, add_criterion, add_data, add_device,  # noqa: E402
                           add_distillation, add_hyp, add_imgsz, add_plan, add_rank_batches, add_run_folder, add_seed,
                           add_target_options, add_weights, add_workers)
from utils.paths import increment_path  # noqa: E402
from utils.plots import plot_sensitivity  # noqa: E402
from utils.profiling import median_latency  # noqa: E402


def _accuracy(model, loader):
    top1, top5, _ = validate(model, loader)
    return top1, top5


LATENCY_BATCH = 16  # images per timed CPU forward in the summary


# The two accuracy rules of the summary, as its footnote states them.
RULES = ("last: the weights (EMA) of the final epoch", "best: best.pt, the epoch with the highest top-1 on this same "
         "val split (picked on the numbers it reports: optimistic)")


def trained_stage(result, loader, dev, distilled, best=None):
    """A summary stage for a training run (train.run's result): best.pt (`best` when already read) and the last
    epoch's weights, each validated on `loader`."""
    best = attempt_load(result["best"], device=dev) if best is None else best
    last = attempt_load(result["last"], device=dev)
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
    if sensitivity:
        table = sensitivity
    else:
        LOGGER.info("sensitivity: top-1 with each channel group pruned alone, at several rates, on 512 training "
                    "images (BatchNorm re-estimated); the widths are allocated by it")
        table = group_sensitivity(base_model, data_root, scores, imgsz, batch_size, images=512,
                                                  calib_batches=5, workers=workers, seed=seed, split="train")
        write_text_atomic(save_dir / "sensitivity.csv", table.to_csv(index=False))
        plot_sensitivity(table, save_dir / "sensitivity.png")
    device = next(base_model.parameters()).device
    plan = plan_for_target(cfg, *target, imgsz, nc=base_model.nc, drop=drop_predictor(sensitivity=table),
                           device=device, **(latency or {}))
    return plan.save(save_dir / "plan.yaml", cfg)


def check_run(o):
    """Resolve run()'s options `o` in place and fail on any that cannot work, before any work (one-line errors).
    Returns the --weights model, read here: the only read of that file in the run."""
    o.fade_epochs = default_fade_epochs(o.finetune_epochs) if o.fade_epochs is None else o.fade_epochs
    if not 0 <= o.fade_epochs <= o.finetune_epochs:
        raise ValueError(f"--fade-epochs must be between 0 and --finetune-epochs ({o.finetune_epochs}), not "
                         f"{o.fade_epochs}")
    for flag, value, minimum in (("--epochs", o.epochs, 1), ("--finetune-epochs", o.finetune_epochs, 1),
                                 ("--rank-batches", o.rank_batches, 1), ("--batch-size", o.batch_size, 1),
                                 ("--workers", o.workers, 0)):
        check_at_least(flag, value, minimum)
    o.imgsz = None if o.imgsz is None else check_img_size(o.imgsz)
    o.target = chosen_target(o.target_flops, o.target_params, o.target_latency, o.rate)
    o.latency_runtime, o.latency_batch = check_latency_options(o.latency_runtime, o.latency_batch)
    o.rate = None if o.target else (o.rate if o.rate is not None else DEFAULT_RATE)
    if o.sensitivity:  # a missing file or one that is not a sensitivity table fails before any work
        read_sensitivity(o.sensitivity)
    source = check_classifier(attempt_load(o.weights), o.weights, "classify/prune.py") if o.weights else None
    o.imgsz = model_imgsz(o.imgsz, source) if source is not None else o.imgsz or DEMO_IMGSZ
    o.cfg = o.cfg or (cfg_of(source, o.weights) if source is not None else DEMO_CFG)
    if o.plan:  # the rule travels in the YAML: every model built from it (and every checkpoint) keeps it
        o.cfg = with_plan(load_yaml(o.cfg), o.plan)
    if not o.target and not needs_scores(ClassificationModel(o.cfg, rate=o.rate)):  # a bad --cfg or --rate fails here
        raise ValueError("--rate is 0 everywhere: nothing to prune; give a rate such as 0.5 or '[0.]+[0.3]*8+[0.]'")
    if o.target:  # a budget no plan reaches fails now, not after training, ranking and sensitivity
        check_reachable(o.cfg, *o.target, o.imgsz, len(class_names(check_cls_dataset(o.data))))
    load_hyp(o.hyp)  # a bad --hyp or distillation setting fails here too, before any work
    check_distillation(o.distill_alpha, o.distill_t)
    return source


def baseline_stage(o, source, common):
    """(baseline path, baseline model, its training run's result or None): --weights, else a baseline trained now."""
    if o.weights:
        LOGGER.info(f"\n{colorstr(f'1/{o.steps} baseline:')} {o.weights}")
        return o.weights, source, None
    cfg_name = o.cfg.get("yaml_file", "the model") if isinstance(o.cfg, dict) else o.cfg
    LOGGER.info(f"\n{colorstr(f'1/{o.steps} baseline:')} training {cfg_name} for {o.epochs} epochs")
    trained = train_cli.run(cfg=o.cfg, epochs=o.epochs, name="baseline", **common)
    return trained["best"], attempt_load(trained["best"]), trained


def rank_stage(o, model, weights, device):
    """(scores, ranks.pt): the filters of the baseline `model` (read from `weights`) ranked by --criterion."""
    LOGGER.info(f"\n{colorstr(f'2/{o.steps} ranks:')} {o.criterion} on {o.data}")
    output = o.save_dir / "ranks.pt"
    torch.manual_seed(o.seed)  # as classify/rank.py
    scores = rank_and_save(ranking_model(deepcopy(model)).to(device), weights, output, data=o.data, criterion=o.criterion,
                           batches=o.rank_batches, batch_size=min(o.batch_size, 32), imgsz=o.imgsz, device=device,
                           workers=o.workers, seed=o.seed)
    return scores, output


def prune_stage(o, base_model, scores, trained_baseline, device):
    """(summary stages before any fine-tune, the evaluation loader): the baseline, the pruned model with the
    top-ranked filters copied in, and the same with BatchNorm re-estimated. With --target-* o.cfg becomes the plan."""
    what = f"widths for --target-{o.target[0]} {o.target[1]:g}" if o.target else f"rate {o.rate}"
    LOGGER.info(f"\n{colorstr(f'3/{o.steps} prune:')} {what}")
    base = deepcopy(base_model).to(device)  # the summary's copy: base_model stays the fine-tunes' source, on the CPU
    root = check_cls_dataset(o.data)
    if o.target:
        latency = {"runtime": o.latency_runtime, "batch": o.latency_batch, "cache_dir": o.project}
        o.cfg = allocate(o.cfg, base, scores, o.target, root, o.imgsz, o.batch_size, o.workers, o.seed, o.save_dir,
                         o.sensitivity, latency)
    pruned = load_model(ClassificationModel(o.cfg, nc=base.nc, rate=o.rate).to(device), base, scores)
    norm = input_norm(base)
    loader = create_classification_dataloader(eval_split(root), imgsz=o.imgsz, batch_size=o.batch_size,
                                              augment=False, workers=o.workers, shuffle=False, norm=norm)
    before = {"baseline": (trained_stage(trained_baseline, loader, device, "no", best=base) if trained_baseline
                           else untrained_stage(base, loader)),
              f"pruned ({what})": untrained_stage(pruned, loader)}
    train_images = create_classification_dataloader(root / "train", imgsz=o.imgsz, batch_size=o.batch_size,
                                                    augment=False, workers=o.workers, shuffle=True, seed=o.seed,
                                                    norm=norm)
    recalibrated = recalibrate_bn(deepcopy(pruned), train_images, batches=10)
    before["pruned + BN recalibrated"] = untrained_stage(recalibrated, loader)
    return before, loader


def finetune_stages(o, baseline, base_model, ranks, common, loader, device):
    """({reference row: stage, pruned row: stage}, (reference row, pruned row)): the pruned model fine-tuned, and the
    unpruned baseline trained the same extra epochs the same way, so that the summary's difference is what pruning
    costs, not what more epochs gain. Both start from base_model in memory (and distil from it by default)."""
    teacher = str(baseline) if o.teacher is None else o.teacher
    teacher_model = base_model if teacher == str(baseline) else None
    # both fine-tunes alike: distilled, and a cosine schedule (benchmarks/recipes.py: +0.3 for the pruned model)
    finetune = dict(teacher=teacher, distill_alpha=o.distill_alpha, distill_t=o.distill_t, cos_lr=True,
                    source=base_model, teacher_model=teacher_model, weights=str(baseline), epochs=o.finetune_epochs)
    distilled = "yes" if teacher else "no"
    how = f"distilling from {teacher}" if teacher else "plain cross-entropy"
    fading = f", the pruned filters fading out over the first {o.fade_epochs}" if o.fade_epochs else ""
    LOGGER.info(f"\n{colorstr(f'4/{o.steps} fine-tune:')} pruned model, {o.finetune_epochs} epochs{fading}, {how}")
    result = train_cli.run(cfg=o.cfg, rate=o.rate, ranks=str(ranks), name="pruned", fade_epochs=o.fade_epochs,
                           **finetune, **common)
    LOGGER.info(f"\n{colorstr(f'5/{o.steps} reference:')} unpruned baseline, the same {o.finetune_epochs} epochs, "
                f"{how}")
    control = train_cli.run(cfg="", name="baseline-ft", **finetune, **common)  # the baseline's architecture
    more = f"+ {o.finetune_epochs} epoch{'s' if o.finetune_epochs != 1 else ''}"
    reference, final = f"baseline {more}", f"pruned {more}"
    stages = {reference: trained_stage(control, loader, device, distilled),
              final: trained_stage(result, loader, device, distilled)}
    return stages, (reference, final), (result, control)


def scratch_stage(o, pruned_yaml, common, loader, device):
    """(row name, stage, run result): what a user gets without pruning, the same small architecture trained from
    scratch as long as baseline + fine-tune, without a teacher."""
    total = o.epochs + o.finetune_epochs  # with --weights, --epochs stands for the baseline's
    LOGGER.info(f"\n{colorstr('6/6 scratch:')} the pruned architecture from scratch, {total} epochs")
    scratch = train_cli.run(cfg=pruned_yaml, epochs=total, name="scratch", **common)
    return f"pruned architecture from scratch ({total} epochs)", trained_stage(scratch, loader, device, "no"), scratch


@nested()  # the train runs it makes stay quiet: no option dumps or next-step hints of their own
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
    The baseline checkpoint is read once; every step gets the model in memory.
    """
    o = argparse.Namespace(**locals())  # the options, resolved once (check_run) and passed down together
    source = check_run(o)
    o.save_dir = increment_path(Path(check_writable(Path(project) / name)), exist_ok=exist_ok, mkdir=True)
    o.steps = 5 if no_scratch else 6
    common = dict(data=data, batch_size=batch_size, imgsz=o.imgsz, device=device, workers=workers, cache=cache,
                  seed=seed, project=o.save_dir, exist_ok=True, hyp=hyp)
    baseline, base_model, trained_baseline = baseline_stage(o, source, common)
    dev = select_device(device, batch_size=batch_size)
    scores, ranks = rank_stage(o, base_model, baseline, dev)
    stages, loader = prune_stage(o, base_model, scores, trained_baseline, dev)
    tuned, (reference, final), (result, control) = finetune_stages(o, baseline, base_model, ranks, common, loader, dev)
    stages.update(tuned)
    scratch = scratch_row = None
    if not no_scratch:
        scratch_row, stages[scratch_row], scratch = scratch_stage(o, stages[final][0].yaml, common, loader, dev)
    rows = summary_rows(stages, o.imgsz)
    log_summary(rows, o.save_dir, reference, final, scratch_row, split=Path(loader.dataset.root).name)
    return {"save_dir": o.save_dir, "baseline": baseline, "ranks": ranks, "pruned": result["best"],
            "baseline_ft": control["best"], "scratch": scratch["best"] if scratch else None, "summary": rows}


def parse_opt(known=False):
    parser = argparse.ArgumentParser(description="Prune a YOLO classifier (YOLOv5, YOLOv8, YOLO11, YOLO26) end to end",
                                     formatter_class=HelpFormatter)
    add_cfg(parser, f"model YAML (default: that of --weights, else {DEMO_CFG})")
    add_weights(parser, "trained classifier/detector; '' trains a baseline first", default="")
    add_data(parser)
    parser.add_argument("--rate", type=str, default=None,
                        help=f"compress rate(s): 0.5, a list, or '[0.]+[0.3]*8+[0.]' (default {DEFAULT_RATE})")
    add_target_options(parser, "instead of --rate: allocate widths to this fraction of the unpruned FLOPs (0-1]",
                       "sensitivity.csv to allocate by (default: measured on the baseline in this run)")
    add_criterion(parser, CRITERIA, DEFAULT_CRITERION)
    add_rank_batches(parser)
    parser.add_argument("--epochs", type=int, default=8,
                        help="baseline epochs (without --weights; with them, the baseline's epochs for the scratch row)")
    parser.add_argument("--finetune-epochs", type=int, default=8, help="fine-tune epochs of the pruned model")
    add_batch_size(parser, "prune")
    add_imgsz(parser, when_omitted=f"that --weights was trained at, else {DEMO_IMGSZ}")
    add_device(parser)
    add_workers(parser, default=2)  # sized for its 2-core demo
    add_cache(parser, default="ram")  # several trainings read the same images
    add_run_folder(parser, "runs/prune-cls")
    add_seed(parser)
    parser.add_argument("--teacher", type=str, default=None,
                        help="distil the fine-tunes from this classifier; default: the baseline; '' = plain cross-entropy")
    add_distillation(parser)
    add_hyp(parser)
    parser.add_argument("--fade-epochs", type=int, default=None,
                        help="fine-tune epochs over which the pruned filters fade out before they are cut "
                             f"(default: {FADE_SHARE:g} of --finetune-epochs, at least 1; 0 cuts them at once)")
    add_plan(parser)
    parser.add_argument("--no-scratch", action="store_true",
                        help="skip the scratch row (the pruned architecture trained from scratch as long)")
    return parser.parse_known_args()[0] if known else parser.parse_args()


def main(opt):
    print_args(vars(opt))
    return run(**vars(opt))


if __name__ == "__main__":
    run_cli(main, parse_opt())
