"""Does pruning pay? Every recipe on several real datasets and seeds, against the reference and against scratch.

Per (dataset, seed): a baseline trained --epochs from scratch; the *reference*, that baseline trained
--finetune-epochs more (the unpruned model trained as long), plainly and by each --references recipe (default:
distilled from the baseline, as classify/prune.py's reference); per rate, *scratch*, the pruned architecture trained
from scratch for --epochs + --finetune-epochs (what a user gets without pruning); and per rate and recipe, the
baseline pruned (filters ranked by --criterion) and fine-tuned --finetune-epochs by that recipe. With --floors,
the same recipes on widths allocated (classify/prune.py's sensitivity allocation) for the FLOPs of each rate, one
plan per floor (no group narrower than that share of its uniform width), each with a scratch row of its own (the
allocated architecture trained from scratch as long).

Top-1 on val of the last epoch (no selection on val) and of the best epoch; the table gives mean (min–max) over
seeds and the mean over datasets. Writes recipes.csv and recipes.md in the run folder.

    python benchmarks/recipes.py --data digits textures photos --seeds 0 1 --epochs 20 --finetune-epochs 10
    python benchmarks/recipes.py --recipes cut cut-kd fade fade-kd --rates 0.5 --jobs 2

Runs of different (dataset, seed) pairs go to --jobs processes (one torch thread each); time nothing with it.
"""

import argparse
import csv
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import pandas as pd  # noqa: E402

from classify.prune import default_fade_epochs  # noqa: E402
from utils.paths import increment_path  # noqa: E402


# recipe modifiers: '<prefix>X' sets a classify/train.py option to the number X; the flags set fixed values
NUMBER_MODIFIERS = {"lr": ("lr0", float), "a": ("distill_alpha", float), "t": ("distill_t", float),
                    "f": ("distill_features", float), "ls": ("label_smoothing", float), "ema": ("ema_tau", float),
                    "steps": ("prune_steps", int), "aug": ("hyp", lambda x: str(augmentation_hyp(float(x)))),
                    "bs": ("batch_size", int), "wd": ("decay", float), "wu": ("warmup_epochs", float),
                    "do": ("dropout", float),
                    "mix": ("hyp", lambda x: str(augmentation_hyp(1.0, mixup=float(x))))}
FLAG_MODIFIERS = {"cos": ("cos_lr", True), "restart": ("restart_lr", True), "ul": ("plan", "ultralytics"),
                  "sgd": ("optimizer", "SGD"), "carry": ("cut_optimizer", "carry")}
MODIFIERS = "kd, kdref, atX, " + ", ".join([*FLAG_MODIFIERS, *(f"{k}X" for k in NUMBER_MODIFIERS)])


def snapshot_epochs(recipe, epochs):
    """K for a recipe with '-atX': prune the baseline's snapshot after K = X·epochs of its `epochs` (early pruning)
    and fine-tune the epochs it skipped on top; None without it."""
    shares = [float(m[2:]) for m in recipe.split("-")[1:] if m.startswith("at") and _is_number(m[2:])]
    if not shares:
        return None
    k = round(shares[0] * epochs)
    if not 1 <= k < epochs:
        raise ValueError(f"recipe '{recipe}': -at{shares[0]:g} must leave a snapshot within the {epochs} baseline epochs")
    return k


def recipe_options(name, finetune_epochs, baseline, reference=""):
    """classify/train.py options of a fine-tune recipe '<base>[-<modifier>...]': base 'cut' (prune at once), 'fade'
    (classify/prune.py's default --fade-epochs) or 'fadeN' (N epochs); modifiers 'kd' (distil from the
    baseline), 'kdref' (from the distilled reference, the unpruned model trained as long), 'cos' (cosine lr),
    'restart' (--restart-lr), 'ul' (--plan ultralytics: only widths ultralytics' YAML can say), 'sgd' (--optimizer
    SGD), 'carry' (--cut-optimizer carry), and numbers: 'lrX' (lr0), 'aX' (distillation weight), 'tX' (its
    temperature), 'fX' (feature distillation weight), 'lsX' (label smoothing), 'emaX' (--ema-tau), 'stepsN'
    (--prune-steps), 'augX' (the default augmentation scaled by X), 'mixX' (--hyp mixup X; not with augX), 'bsN'
    (--batch-size), 'wdX' (--decay, the weight decay), 'wuX' (--warmup-epochs), 'doX' (--dropout); 'atX' (pruned
    early: from the baseline after X of its epochs, see snapshot_epochs) changes the source, not options."""
    base, *modifiers = name.split("-")
    options = {}
    for m in modifiers:
        if m.startswith("at") and _is_number(m[2:]):
            continue
        if m in ("kd", "kdref"):
            options["teacher"] = str(baseline if m == "kd" else reference)
        elif m in FLAG_MODIFIERS:
            option, value = FLAG_MODIFIERS[m]
            options[option] = value
        else:  # the longest prefix first: 'aug0.5' is not 'a' + 'ug0.5'
            prefix = next((k for k in sorted(NUMBER_MODIFIERS, key=len, reverse=True)
                           if m.startswith(k) and _is_number(m[len(k):])), None)
            option, kind = NUMBER_MODIFIERS.get(prefix, (None, None))
            try:
                options[option] = kind(m[len(prefix):])
            except (TypeError, ValueError):  # no such prefix, or an int option given a fraction
                raise ValueError(f"recipe '{name}': unknown modifier '-{m}' ({MODIFIERS})") from None
    if base == "cut":
        return options
    if base.startswith("fade") and (base[4:] == "" or base[4:].isdigit()):
        epochs = int(base[4:]) if base[4:] else default_fade_epochs(finetune_epochs)
        return {**options, "fade_epochs": min(epochs, finetune_epochs)}
    raise ValueError(f"recipe '{name}' not known: cut, fade or fadeN, with modifiers {MODIFIERS}")


HYP_DIR = ROOT / "runs" / "recipes" / "hyps"  # where -augX writes its --hyp files


def augmentation_hyp(strength, mixup=0.0):
    """A --hyp file with the default augmentation scaled by `strength` (1: the defaults, 0: none): crop area from
    1 - strength·(1 - min area), flip probability and colour jitter times strength; mixup with that probability.
    Written once in HYP_DIR."""
    import yaml

    from utils.hyp import DEFAULT_HYP

    hyp = yaml.safe_load(DEFAULT_HYP.read_text())
    hyp = dict(hyp, scale=[round(1 - strength * (1 - hyp["scale"][0]), 4), 1.0], fliplr=hyp["fliplr"] * strength,
               flipud=hyp["flipud"] * strength, jitter=hyp["jitter"] * strength, mixup=mixup)
    path = Path(HYP_DIR) / (f"aug{strength:g}.yaml" if not mixup else f"aug{strength:g}-mixup{mixup:g}.yaml")
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump(hyp, sort_keys=False))
    return path


def _is_number(text):
    try:
        float(text)
        return True
    except ValueError:
        return False


def last_top1(results_csv):
    return float(pd.read_csv(results_csv)["metrics/accuracy_top1"].iloc[-1])


def _finished_run(folder, options):
    """The row values of a run in `folder` that finished with the same options (its last.pt says), else None."""
    from models.experimental import attempt_load
    from models.io.checkpoints import CheckpointError, load_checkpoint
    from models.yolo import ClassificationModel
    from utils.model_info import count_params, model_gflops

    try:
        last = load_checkpoint(folder / "weights" / "last.pt")
    except (CheckpointError, FileNotFoundError):
        return None
    same = all(last["opt"].get(k) == (str(v) if isinstance(v, Path) else v) for k, v in options.items()
               if k != "ranks")  # a ranks file's name follows the criterion, which is compared
    if not (same and last.get("finished")):
        return None
    results = pd.read_csv(folder / "results.csv")["metrics/accuracy_top1"]
    model = attempt_load(folder / "weights" / "best.pt")
    imgsz = options["imgsz"]
    full = model_gflops(ClassificationModel(model.yaml, rate=0.0), imgsz)
    return {"parameters": count_params(model), "flops": model_gflops(model, imgsz) / full,
            "top1_last": float(results.iloc[-1]), "top1_best": float(results.max()),
            "best": str(folder / "weights" / "best.pt")}


def _train(row, common, **options):
    """One classify/train.py run as a table row. A run folder that already finished with the same options is reused,
    so the benchmark can be re-run with more recipes without retraining the rows they share."""
    from classify import train as train_cli

    options = {**common, **options}
    done = _finished_run(Path(common["project"]) / common["name"], options)
    if done is not None:
        return {**row, **done}
    result = train_cli.run(**options)
    return {**row, "parameters": result["parameters"], "flops": result["gflops"] / result["unpruned_gflops"],
            "top1_last": last_top1(result["results"]), "top1_best": result["top1"], "best": str(result["best"])}


def _classes(data):
    from utils.datasets import check_cls_dataset, class_names

    return class_names(check_cls_dataset(data))


def allocation_drop(baseline, ranks, data, opt, seed, output):
    """classify/prune.py's accuracy-drop predictor for allocation: sensitivity curves of the baseline measured on
    512 training images (saved as `output`, a CSV)."""
    from models.allocation import drop_predictor
    from models.experimental import attempt_load
    from models.io.ranks import load_scores
    from models.sensitivity import group_sensitivity
    from utils.datasets import check_cls_dataset

    table = group_sensitivity(attempt_load(baseline), check_cls_dataset(data), load_scores(ranks)[0], opt["imgsz"],
                              opt["batch_size"], images=512, calib_batches=5, workers=0, seed=seed, split="train")
    table.to_csv(output, index=False)
    return drop_predictor(sensitivity=table)


def allocated_cfg(opt, flops, drop, floor, nc):
    """The model YAML dict with widths allocated for `flops` (a fraction of the unpruned FLOPs) under `floor`."""
    from models.budget import plan_for_target

    plan = plan_for_target(opt["cfg"], "flops", flops, opt["imgsz"], nc=nc, drop=drop, min_share=floor)
    return plan.yaml(opt["cfg"])


def latency_plans(opt, drop, nc, rate, save_dir):
    """(ONNX Runtime timing at --imgsz, batch 1; the model YAML with widths allocated by the latency table for the
    uniform rate's measured latency)."""
    from models.budget import plan_for_target
    from models.latency import PlanLatency
    from models.plan import Plan

    timing = PlanLatency(opt["cfg"], opt["imgsz"], nc, "onnxruntime", 1, cache_dir=save_dir)  # one table for all
    target = timing.fractions([Plan.uniform(timing.costs.full, rate)])[0]
    plan = plan_for_target(opt["cfg"], "latency", min(1.0, target), opt["imgsz"], nc=nc, drop=drop, timing=timing)
    return timing, plan.yaml(opt["cfg"])


def unit(task):
    """Every row of one (dataset, seed): baseline, reference, scratch and pruned recipes per rate (quietly)."""
    import torch

    from utils.log import LOGGER

    torch.set_num_threads(task["threads"])
    level = LOGGER.level
    LOGGER.setLevel("WARNING")
    try:
        return unit_rows(task)
    finally:
        LOGGER.setLevel(level)


def unit_rows(task):
    opt, data, seed = task["opt"], task["data"], task["seed"]
    folder = Path(task["save_dir"]) / f"{data}-seed{seed}"  # this pair's runs, ranks and sensitivity
    common = dict(data=data, imgsz=opt["imgsz"], batch_size=opt["batch_size"], workers=0, cache="ram", seed=seed,
                  project=str(folder), exist_ok=True, hyp=opt["hyp"])
    tag = dict(data=data, seed=seed)
    rows = []
    base = _train(dict(tag, row="baseline", rate=0.0), dict(common, name="baseline"), cfg=opt["cfg"],
                  epochs=opt["epochs"])
    rows.append(base)
    baseline = base["best"]
    ft = opt["finetune_epochs"]
    references = {}  # the unpruned baseline trained as long, plainly and as each --references recipe says
    for recipe in ["cut", *(f"cut-{r}" for r in opt["references"])]:
        name = recipe.replace("cut", "reference", 1)
        references[name] = _train(dict(tag, row=name, rate=0.0), dict(common, name=name), weights=baseline, epochs=ft,
                                  **recipe_options(recipe, ft, baseline))
        rows.append(references[name])
    reference = references.get("reference-kd", rows[-1])  # the teacher of -kdref: classify/prune.py's reference
    baselines = [("", baseline)]  # (name prefix, checkpoint) that recipes prune: the plain baseline, sparse ones
    for strength in opt["sparsity"]:
        prefix = f"sp{strength:g}"
        rows.append(_train(dict(tag, row=f"baseline {prefix}", rate=0.0), dict(common, name=f"baseline-{prefix}"),
                           cfg=opt["cfg"], epochs=opt["epochs"], sparsity=strength))
        baselines.append((prefix, rows[-1]["best"]))
    snapshots = {}  # K → the baseline's weights after K of its epochs, for recipes '-atX' (same run, saved on the way)
    for k in sorted({snapshot_epochs(r, opt["epochs"]) for r in opt["recipes"]} - {None}):
        run = _train(dict(tag, row="baseline", rate=0.0), dict(common, name=f"baseline-snap{k}"), cfg=opt["cfg"],
                     epochs=opt["epochs"], save_period=k)
        snapshots[k] = str(Path(run["best"]).with_name(f"epoch{k}.pt"))
    scratch_flops = {}
    for rate in opt["rates"]:
        rows.append(_train(dict(tag, row="scratch", rate=rate), dict(common, name=f"scratch-{rate}"), cfg=opt["cfg"],
                           rate=str(rate), epochs=opt["epochs"] + ft))
        scratch_flops[rate] = rows[-1]["flops"]
    for prefix, source in baselines:
        rows += pruned_rows(task, common, source, prefix, reference["best"], scratch_flops, {} if prefix else snapshots)
    return rows


def pruned_rows(task, common, baseline, prefix, reference, scratch_flops, snapshots=None):
    """Per rate, plan and recipe: `baseline` pruned (ranked by --criterion) and fine-tuned; names start `prefix`.
    A recipe '-atX' prunes the baseline's snapshot `snapshots[K]` instead (ranked in its own training run) and
    fine-tunes the baseline epochs it skipped on top; without that snapshot it is left out."""
    from classify import rank as rank_cli

    opt, data, seed = task["opt"], task["data"], task["seed"]
    folder = Path(common["project"])
    tag, ft = dict(data=data, seed=seed), opt["finetune_epochs"]
    label, stem = (f"{prefix} ", f"{prefix}-") if prefix else ("", "")
    ranks = rank_cli.run(weights=baseline, data=data, criterion=opt["criterion"], batch_size=32, imgsz=opt["imgsz"],
                         workers=0, output=folder / f"ranks-{stem}{opt['criterion']}.pt", seed=seed)
    criterion = "" if opt["criterion"] == "bn" else f"-{opt['criterion']}"  # in run names, unless the default
    drop = None
    if opt["floors"] or opt["latency"]:  # one sensitivity table per baseline (a sparse one has its own)
        drop = allocation_drop(baseline, ranks, data, opt, seed, folder / f"{stem}sensitivity.csv")
    rows = []
    for rate in opt["rates"]:
        plans = [("uniform", dict(cfg=opt["cfg"], rate=str(rate)))] if opt["uniform"] else []
        for floor in opt["floors"]:
            plan = allocated_cfg(opt, scratch_flops[rate], drop, floor, nc=len(_classes(data)))
            plans.append((f"allocated-floor{floor:g}", dict(cfg=plan)))
        timing = None
        if opt["latency"]:
            try:
                timing, plan = latency_plans(opt, drop, len(_classes(data)), rate, task["save_dir"])
                plans.append(("latency-allocated", dict(cfg=plan)))
            except ValueError as e:  # the uniform plan's measured latency is below what the table can reach
                print(f"{data} seed {seed} rate {rate}: no latency-allocated plan: {e}")
        for plan, arch in plans:
            latency = timing.fractions([plan_widths(arch, timing.costs.full)])[0] if timing else None
            if plan != "uniform":  # scratch is the pruned architecture itself: an allocated plan is another one
                rows.append(_train(dict(tag, row=f"{label}scratch {plan}", rate=rate),
                                   dict(common, name=f"{stem}scratch-{plan}-{rate}"), **arch,
                                   epochs=opt["epochs"] + ft))
            for recipe in opt["recipes"]:
                k = snapshot_epochs(recipe, opt["epochs"])
                if k is not None and k not in (snapshots or {}):
                    continue
                source = dict(weights=baseline, ranks=str(ranks), epochs=ft) if k is None else dict(
                    weights=snapshots[k], epochs=ft + opt["epochs"] - k)  # as many epochs in all as the others
                rows.append(_train(dict(tag, row=f"{label}{plan} {recipe}{criterion}", rate=rate),
                                   dict(common, name=f"{stem}{plan}-{recipe}{criterion}-{rate}"), **source,
                                   criterion=opt["criterion"], **arch, **recipe_options(recipe, ft, baseline, reference)))
                if latency is not None:
                    rows[-1]["latency"] = latency
    return rows


def plan_widths(arch, full):
    """{group: width} of a plan row's architecture: the YAML's widths, or its uniform rate's (`full`: unpruned widths)."""
    from models.plan import Plan

    if isinstance(arch["cfg"], dict):
        return arch["cfg"]["widths"]
    return Plan.uniform(full, float(arch["rate"]))


def summary(table):
    """Markdown: per (rate, row), top-1 (last epoch) mean (min–max) over seeds for each dataset, and the mean over
    datasets; FLOPs as a fraction of the unpruned model."""
    datasets = list(dict.fromkeys(table["data"]))
    timed = "latency" in table and table["latency"].notna().any()
    head = "| rate | row | FLOPs | " + ("latency | " if timed else "") + " | ".join(datasets) + " | mean |"
    lines = [head, "|" + "---|" * (4 + timed + len(datasets))]
    for (rate, row), g in table.groupby(["rate", "row"], sort=False):
        cells = []
        for d in datasets:
            t = g[g["data"] == d]["top1_last"]
            cells.append(f"{t.mean():.3f} ({t.min():.3f}–{t.max():.3f})" if len(t) else "")
        mean = g.groupby("data")["top1_last"].mean().mean()
        latency = (f"{g['latency'].mean():.3f} | " if g["latency"].notna().any() else "| ") if timed else ""
        lines.append(f"| {rate} | {row} | {g['flops'].mean():.3f} | {latency}" + " | ".join(cells) + f" | **{mean:.3f}** |")
    return "\n".join(lines)


def main(opt):
    t0 = time.time()
    save_dir = increment_path(Path(opt.project) / opt.name, exist_ok=opt.exist_ok, mkdir=True)
    options = dict(vars(opt), project=str(opt.project))
    tasks = [dict(opt=options, data=d, seed=s, save_dir=str(save_dir), threads=1 if opt.jobs > 1 else
                  max(1, os.cpu_count() or 1)) for d in opt.data for s in opt.seeds]
    if opt.jobs > 1:
        import multiprocessing

        with ProcessPoolExecutor(opt.jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
            results = list(pool.map(unit, tasks))
    else:
        results = [unit(t) for t in tasks]
    table = pd.DataFrame([r for rows in results for r in rows])
    table.to_csv(save_dir / "recipes.csv", index=False, quoting=csv.QUOTE_MINIMAL)
    text = summary(table)
    (save_dir / "recipes.md").write_text(text + "\n")
    print(text)
    print(f"{len(tasks)} (dataset, seed) pairs in {time.time() - t0:.0f} s; {save_dir / 'recipes.csv'}")
    return table


def parse_opt(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", nargs="+", default=["digits", "textures", "photos"], help="datasets")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    parser.add_argument("--cfg", default="yolov5n-cls.yaml")
    parser.add_argument("--epochs", type=int, default=20, help="baseline epochs")
    parser.add_argument("--finetune-epochs", type=int, default=10, help="fine-tune (and reference) epochs")
    parser.add_argument("--rates", nargs="+", type=float, default=[0.3, 0.5, 0.7])
    parser.add_argument("--recipes", nargs="+", default=["cut-kd", "fade-kd"],
                        help=f"cut, fade or fadeN, with modifiers {MODIFIERS} "
                             "(recipe_options)")
    parser.add_argument("--references", nargs="*", default=["kd"],
                        help="modifiers of extra reference rows (the plain one is always run): kd, kd-cos, ...")
    parser.add_argument("--criterion", default="bn")
    parser.add_argument("--sparsity", nargs="*", type=float, default=[],
                        help="also a baseline trained with each --sparsity strength (Network Slimming), pruned and "
                             "fine-tuned by every recipe (rows 'spX ...')")
    parser.add_argument("--floors", nargs="*", type=float, default=[],
                        help="also widths allocated (sensitivity, as classify/prune.py) for each rate's FLOPs, one plan "
                             "per floor (models.allocation.allocate's min_share; 0 = unbounded)")
    parser.add_argument("--no-uniform", dest="uniform", action="store_false", help="skip the uniform-rate plans")
    parser.add_argument("--latency", action="store_true",
                        help="also widths allocated by ONNX Runtime latency (models/latency.py) at each uniform rate's "
                             "measured latency (batch 1, --imgsz), and every plan's measured latency; needs --jobs 1")
    parser.add_argument("--imgsz", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--hyp", default="")
    parser.add_argument("--jobs", type=int, default=1, help="(dataset, seed) pairs run at once")
    parser.add_argument("--project", default=ROOT / "runs/recipes")
    parser.add_argument("--name", default="exp")
    parser.add_argument("--exist-ok", action="store_true", help="add to project/name: its finished runs are reused")
    opt = parser.parse_args(argv)
    for r in opt.recipes:
        recipe_options(r, opt.finetune_epochs, "")  # a bad name fails before any training
    if opt.latency and opt.jobs > 1:
        parser.error("--latency times plans: run it with --jobs 1 (parallel jobs would time each other)")
    return opt


if __name__ == "__main__":
    main(parse_opt())
