"""Train a (pruned) YOLOv5 classifier on a classification dataset.

The model is built from --cfg with per-layer compress rates --rate, filled with the top-ranked filters of
--weights (a YOLOv5 or ultralytics classifier or detector checkpoint; '' trains from scratch), and fine-tuned.

Usage - single process (GPU if available, else CPU):
    python classify/train.py --cfg yolov5s-cls.yaml --weights yolov5s-cls.pt --rate 0.3 --data imagenette160 --img 224
    python classify/train.py --cfg yolov5n-cls.yaml --img 64 --epochs 3          # built-in data, from scratch

Usage - multi-GPU DDP (NCCL); --batch-size is the total over all processes:
    torchrun --nproc_per_node 4 classify/train.py --weights yolov5s-cls.pt --rate 0.3 --device 0,1,2,3 --batch-size 256

Usage - DDP on CPU (gloo), e.g. to try DDP without GPUs:
    torchrun --nproc_per_node 2 classify/train.py --device cpu --cfg yolov5n-cls.yaml --img 64

Usage - multi-node: run the same command on every node; torchrun's flags do the rendezvous:
    torchrun --nnodes 2 --node_rank 0 --nproc_per_node 8 --master_addr 10.0.0.1 --master_port 29500 classify/train.py
    torchrun --nnodes 2 --node_rank 1 --nproc_per_node 8 --master_addr 10.0.0.1 --master_port 29500 classify/train.py
  Rank 0 (node 0) saves the run folder; filter scores are computed once on rank 0 and sent to all ranks, so
  nodes need no shared filesystem (the dataset must exist on each node).

Usage - resume an interrupted run with its original options (--device/--workers may change):
    python classify/train.py --resume                                   # latest last.pt under --project
    python classify/train.py --resume runs/train-cls/exp3/weights/last.pt

Usage - recover a pruned model's accuracy by distilling from the unpruned one, with augmentation fitted to the data:
    python classify/train.py --weights base.pt --rate 0.5 --teacher base.pt --hyp my-hyp.yaml --data digits --img 32

Usage - prune softly: the pruned filters fade out of the unpruned model over the first 5 epochs, then are cut:
    python classify/train.py --weights base.pt --rate 0.5 --fade-epochs 5 --epochs 10 --teacher base.pt --cos-lr

Output (runs/train-cls/exp*/): weights/last.pt (every epoch) and best.pt, results.csv, results.png,
ranks.pt (the filter scores used), opt.yaml, hyp.yaml (the augmentation and loss settings used).
"""

import argparse
import os
import sys
import time
from copy import deepcopy
from pathlib import Path

FILE = Path(__file__).resolve()
ROOT = FILE.parents[1]
if str(ROOT) not in sys.path:
    sys.path.append(str(ROOT))

import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import yaml  # noqa: E402

from models.allocation import drop_predictor  # noqa: E402
from models.budget import check_reachable, chosen_target, plan_for_target  # noqa: E402
from models.criteria import CRITERIA, DEFAULT_CRITERION, check_criterion  # noqa: E402
from models.experimental import attempt_load  # noqa: E402
from models.io.checkpoints import CheckpointError, is_project_checkpoint, load_checkpoint  # noqa: E402
from models.io.ranks import load_scores, save_scores  # noqa: E402
from models.latency import check_latency_options  # noqa: E402
from models.prune import load_model, needs_scores  # noqa: E402
from models.ranking import score_filters, score_model  # noqa: E402
from models.recipes import Distillation, Fade, Mixup, Sparsity, fade_start  # noqa: E402
from models.sensitivity import read_sensitivity  # noqa: E402
from models.sparsity import check_sparsity  # noqa: E402
from models.trainer import Trainer, plain_options, training_memory_format  # noqa: E402
from models.yolo import (ClassificationModel, cfg_of, classifier_yaml, input_norm, resolve_rates,  # noqa: E402
                         with_plan)
from utils import run_lock  # noqa: E402
from utils.cli import (DEFAULT_IMGSZ, USER_ERRORS, HelpFormatter, Interrupted, UserError, check_at_least,  # noqa: E402
                       check_img_size, check_writable, print_args, run_cli)
from utils.dataloaders import create_classification_dataloader, share_cpu_cores  # noqa: E402
from utils.datasets import check_cls_dataset, class_names, eval_split  # noqa: E402
from utils.device import select_device  # noqa: E402
from utils.distill import DISTILL_FEATURES, Distiller, check_distillation, output_classes  # noqa: E402
from utils.distributed import (LOCAL_RANK, RANK, WORLD_SIZE, broadcast_object, cleanup, de_parallel,  # noqa: E402
                               init_distributed, is_main_process, torch_distributed_zero_first)
from utils.downloads import attempt_download  # noqa: E402
from utils.ema import EMA_TAU  # noqa: E402
from utils.hyp import load_hyp, save_hyp  # noqa: E402
from utils.log import LOGGER, colorstr, is_nested  # noqa: E402
from utils.model_info import model_info  # noqa: E402
from utils.options import (add_batch_size, add_cache, add_cfg, add_criterion, add_data, add_device,  # noqa: E402
                           add_distillation, add_hyp, add_imgsz, add_plan, add_rank_batches, add_ranks, add_run_folder,
                           add_seed, add_target_options, add_weights, add_workers)
from utils.optim import OPTIMIZERS  # noqa: E402
from utils.paths import increment_path  # noqa: E402
from utils.plots import plot_results  # noqa: E402
from utils.profiling import median_latency  # noqa: E402
from utils.seeds import init_seeds  # noqa: E402

RESUME_OVERRIDES = ("device", "workers")  # the only options a resumed run takes from the new command line


# ----------------------------------------------------------------------------------------------- options
def is_finished(ckpt):
    """True for a training checkpoint whose run completed (or stopped early): nothing left to resume."""
    return bool(ckpt.get("finished")) or ckpt["epoch"] + 1 >= ckpt["opt"]["epochs"]


def is_resumable(ckpt):
    return is_project_checkpoint(ckpt) and isinstance(ckpt.get("opt"), dict) and ckpt.get("optimizer") is not None


def get_latest_run(search_dir="."):
    """The most recently written last*.pt under search_dir whose run is unfinished (for a bare --resume), or ''."""
    runs = sorted((p for p in Path(search_dir).rglob("last*.pt") if p.is_file()), key=os.path.getmtime, reverse=True)
    for path in runs:
        try:
            ckpt = load_checkpoint(path)
        except CheckpointError:
            continue
        if is_resumable(ckpt) and not is_finished(ckpt):
            return str(path)
    return ""


def resume_options(opt):
    """(options of the interrupted run, its checkpoint) for --resume; only RESUME_OVERRIDES come from opt."""
    last = opt.resume if isinstance(opt.resume, (str, Path)) else get_latest_run(opt.project)
    if not last:
        raise FileNotFoundError(f"--resume: no unfinished run (weights/last.pt) under {opt.project}; pass --resume "
                                f"path/to/last.pt")
    if not isinstance(opt.resume, (str, Path)):
        LOGGER.info(f"{colorstr('resume:')} the latest unfinished run is {last}")
    last = Path(last)
    ckpt = load_checkpoint(last)
    if not is_resumable(ckpt):
        raise UserError(f"--resume: {last} is not a resumable training checkpoint (it holds no optimizer state or "
                        f"options); resume from a run's weights/last.pt, or start a new run with --weights {last}")
    epochs = ckpt["opt"]["epochs"]
    if is_finished(ckpt):
        raise UserError(f"--resume: {last} is from a finished run ({ckpt['epoch'] + 1}/{epochs} epochs), nothing to "
                        f"resume; start a new training from it with --weights {last.parent / 'best.pt'}")
    defaults = parse_opt(True, argv=[])
    resumed = argparse.Namespace(**{**vars(defaults), **ckpt["opt"]})  # options newer than the run: defaults
    for k in RESUME_OVERRIDES:  # only when given: otherwise the run keeps its own setting
        if getattr(opt, k) != getattr(defaults, k):
            setattr(resumed, k, getattr(opt, k))
    resumed.resume, resumed.save_dir = str(last), str(last.parent.parent)
    return resumed, ckpt


DEFAULT_CFG = "yolov5s-cls.yaml"


def model_cfg(opt):
    """The classifier YAML dict of --cfg (a detector's cut at --cutoff), under --plan's rule."""
    return with_plan(classifier_yaml(opt.cfg, opt.cutoff), opt.plan)


def check_options(opt, source=None):
    """Fail fast, before any folder or file is made, on options that cannot work. Returns the --weights model (read
    from disk here, once: the architecture, the ranks and the copied filters all come from it; `source` when the
    caller read it already), or None."""
    check_at_least("--epochs", opt.epochs, 1)
    check_at_least("--batch-size", opt.batch_size, 1)
    check_at_least("--workers", opt.workers, 0)
    if not opt.warmup_epochs >= 0:  # a float: a count of epochs, fractions allowed
        raise UserError(f"--warmup-epochs must be ≥ 0, not {opt.warmup_epochs}")
    opt.imgsz = check_img_size(opt.imgsz)
    if opt.batch_size % WORLD_SIZE:
        raise ValueError(f"--batch-size {opt.batch_size} is the total over {WORLD_SIZE} processes and must be a "
                         f"multiple of it")
    check_criterion(opt.criterion)
    if opt.rank_batches < 1:
        raise ValueError(f"--rank-batches must be at least 1, not {opt.rank_batches}")
    if not (opt.weights and opt.pretrained):
        source = None
    elif source is None:
        source = attempt_load(opt.weights)  # missing/bad file: one line
    if not opt.cfg:  # YOLOv5 users pass only --model/--weights: rebuild that architecture
        opt.cfg = cfg_of(source, opt.weights) if source is not None else DEFAULT_CFG
    cfg = model_cfg(opt)  # bad --cfg or --plan: one-line ValueError
    resolve_rates(cfg, opt.rate)  # bad --rate: one line
    target = chosen_target(opt.target_flops, opt.target_params, opt.target_latency, opt.rate)  # bad: one line
    opt.latency_runtime, opt.latency_batch = check_latency_options(opt.latency_runtime, opt.latency_batch)
    if target:  # a budget no plan reaches fails now, not after ranking
        check_reachable(cfg, *target, opt.imgsz, len(class_names(check_cls_dataset(opt.data))))
    if opt.sensitivity:  # a missing file or one that is not a sensitivity table fails before any work
        read_sensitivity(opt.sensitivity)
    if opt.ranks and not Path(opt.ranks).is_file():
        raise FileNotFoundError(f"--ranks file '{opt.ranks}' not found (make one with classify/rank.py)")
    training_hyp(opt)  # bad --hyp: one-line ValueError
    if not 0 <= opt.fade_epochs <= opt.epochs:
        raise ValueError(f"--fade-epochs must be between 0 and --epochs ({opt.epochs}), not {opt.fade_epochs}")
    if opt.prune_steps < 1 or (opt.prune_steps > 1 and opt.fade_epochs < opt.prune_steps):
        raise ValueError(f"--prune-steps must be at least 1 and at most --fade-epochs ({opt.fade_epochs}; each step "
                         f"fades over one epoch or more), not {opt.prune_steps}")
    if opt.teacher:
        check_distillation(opt.distill_alpha, opt.distill_t, opt.distill_features)
        teacher_path(opt.teacher)
    check_sparsity(opt.sparsity)
    if not opt.ema_tau > 0:
        raise ValueError(f"--ema-tau must be positive, not {opt.ema_tau}")
    return source


# ---------------------------------------------------------------------------------------- model building
def compute_ranks(opt, cfg, data_dir, device, batch_size, source):
    """(scores, meta): rank the filters of the --weights model `source` on un-augmented training images."""
    LOGGER.info(f"{colorstr('ranks:')} scoring filters of {opt.weights} by {opt.criterion}...")
    scores, meta = score_filters(source, dict(cfg, rate=0.0), data_dir, opt.criterion, opt.rank_batches, batch_size,
                                 opt.imgsz, device, opt.workers, opt.seed)
    return scores, dict(meta, source=str(opt.weights))  # the file, not the model object it was read into


def shared_scores(opt, cfg, data_dir, device, batch_size, source):
    """(scores, meta or None): from --ranks, or computed once on rank 0 and broadcast to every rank.

    Broadcasting (instead of a file + barrier) also works across nodes without a shared filesystem, and a
    failure on rank 0 reaches the other ranks as the same error instead of leaving them waiting.
    """
    if opt.ranks:
        scores, meta = load_scores(opt.ranks)
        if meta.get("criterion") not in (None, opt.criterion):
            LOGGER.warning(f"WARNING ⚠️ --ranks {opt.ranks} holds '{meta['criterion']}' scores; --criterion "
                           f"{opt.criterion} is ignored")
        return scores, None
    result = None
    if is_main_process():
        try:
            result = compute_ranks(opt, cfg, data_dir, device, batch_size, source)
        except USER_ERRORS as e:
            result = e
    result = broadcast_object(result)
    if isinstance(result, BaseException):
        raise result
    return result


def allocated_widths(opt, cfg, target, nc, data_dir, device, batch_size, source=None):
    """(plan, scores, meta) for `target` = (metric, fraction) of --target-*: the plan is chosen on rank 0 (from
    --sensitivity curves, else from the filter scores of --weights) and sent to every rank, so all build the same
    model."""
    scores = meta = None
    if source is not None:
        scores, meta = shared_scores(opt, cfg, data_dir, device, batch_size, source)
    plan = None
    if is_main_process():
        drop = drop_predictor(scores, opt.sensitivity or None)
        plan = plan_for_target(cfg, *target, opt.imgsz, nc=nc, drop=drop, device=device, runtime=opt.latency_runtime,
                               batch=opt.latency_batch, cache_dir=opt.project)
    return broadcast_object(plan), scores, meta


def build_model(opt, nc, data_dir, device, batch_size, source=None, cfg=None):
    """(model, scores, meta): the pruned classifier of `cfg` (default: model_cfg(opt)) with the top-ranked filters of
    `source` (the --weights model) copied in. Filters are ranked only where the model is narrower than the source
    (not for an already pruned checkpoint fine-tuned at its own rates)."""
    cfg = model_cfg(opt) if cfg is None else cfg
    scores = meta = None
    target = chosen_target(opt.target_flops, opt.target_params, opt.target_latency, opt.rate)  # checked already
    if target:
        plan, scores, meta = allocated_widths(opt, cfg, target, nc, data_dir, device, batch_size, source)
        model = ClassificationModel(cfg, nc=nc, widths=plan)
    else:
        model = ClassificationModel(cfg, nc=nc, rate=opt.rate)
    if opt.ranks and source is None:
        LOGGER.warning(f"WARNING ⚠️ --ranks {opt.ranks} ignored: training from scratch, there are no --weights to "
                       f"select filters from")
    if opt.weights and not opt.pretrained:
        LOGGER.warning(f"WARNING ⚠️ --pretrained False: --weights {opt.weights} ignored, training from scratch")
    elif source is not None:
        if needs_scores(model, source) and scores is None:
            scores, meta = shared_scores(opt, cfg, data_dir, device, batch_size, source)
        load_model(model, source, scores)
    elif needs_scores(model):
        LOGGER.info(f"{colorstr('model:')} no --weights: training the pruned architecture from scratch")
    return model, scores, meta


def training_hyp(opt, resume_ckpt=None):
    """The augmentation and loss settings: a resumed run's own, else --hyp's (--label-smoothing overrides its key)."""
    if resume_ckpt is not None and resume_ckpt.get("hyp"):
        return load_hyp(resume_ckpt["hyp"])
    hyp = load_hyp(opt.hyp)
    if opt.label_smoothing is not None:
        hyp = load_hyp(dict(hyp, label_smoothing=opt.label_smoothing))
    return hyp


def teacher_path(weights):
    try:
        return attempt_download(weights)
    except FileNotFoundError as e:
        raise FileNotFoundError(f"--teacher: {e}") from None


def load_teacher(opt, names, device, memory_format, teacher=None):
    """The --teacher classifier (`teacher` when the caller read it already) on this process's device."""
    if teacher is None:
        teacher = attempt_load(teacher_path(opt.teacher), device=device)  # safe loader: weights-only unpickling
    else:  # a copy: the distiller freezes and hooks its teacher
        teacher = deepcopy(teacher).to(device)
    nc = output_classes(teacher)
    if nc != len(names):
        raise ValueError(f"--teacher {opt.teacher} predicts {nc} classes but the data has {len(names)}: the teacher "
                         f"must be trained on the same classes")
    teacher_names = list(getattr(teacher, "names", None) or [])
    if teacher_names and teacher_names != list(names) and not all(n == str(i) for i, n in enumerate(teacher_names)):
        LOGGER.warning(f"WARNING ⚠️ --teacher {opt.teacher} has class names {teacher_names[:5]}... but the data has "
                       f"{list(names)[:5]}...: its outputs are matched to the classes by index")
    features = f", features {opt.distill_features}" if opt.distill_features else ""
    LOGGER.info(f"{colorstr('distill:')} teacher {opt.teacher}, alpha {opt.distill_alpha}, T {opt.distill_t}{features}")
    return teacher.to(memory_format=memory_format)


def set_dropout(model, p):
    """--dropout: the probability of every Dropout (the Classify head's); None keeps the model's."""
    if p is not None:
        for m in model.modules():
            if isinstance(m, nn.Dropout):
                m.p = p


def summarize(model, imgsz, best_row, files):
    """Log parameters, GFLOPs and batch-1 latency of the trained model against the same YAML at rate 0, the best
    accuracy and where the files are; returns the numbers."""
    model = de_parallel(model).eval()
    p = next(model.parameters())
    memory_format = training_memory_format(p.device)
    x = torch.zeros(1, 3, imgsz, imgsz, device=p.device).to(memory_format=memory_format)
    if not needs_scores(model):  # not pruned: nothing to compare with
        pruned = base = model_info(model, imgsz, name="model")
        pruned["latency"], = median_latency([model], x)
        LOGGER.info(f"latency {pruned['latency'] * 1e3:.2f} ms (batch 1, {p.device.type})")
    else:
        unpruned = ClassificationModel(model.yaml, rate=0.0).to(p.device, memory_format=memory_format).eval()
        base = model_info(unpruned, imgsz, name="unpruned")
        pruned = model_info(model, imgsz, name="pruned  ")
        base["latency"], pruned["latency"] = median_latency([unpruned, model], x)
        LOGGER.info(f"pruned/unpruned: {pruned['parameters'] / base['parameters']:.1%} parameters, "
                    f"{pruned['gflops'] / base['gflops']:.1%} GFLOPs, {pruned['latency'] * 1e3:.2f}/"
                    f"{base['latency'] * 1e3:.2f} ms latency (batch 1, {p.device.type})")
    if best_row:
        LOGGER.info(f"best epoch {best_row[0]}: top1_acc {best_row[3]:.4g}, top5_acc {best_row[4]:.4g}")
    for label, path in files.items():
        LOGGER.info(f"{label:<12} {colorstr('bold', path)}")
    return {"parameters": pruned["parameters"], "gflops": pruned["gflops"], "latency": pruned["latency"],
            "unpruned_parameters": base["parameters"], "unpruned_gflops": base["gflops"],
            "unpruned_latency": base["latency"]}


def interruption(opt):
    """The one line a Ctrl-C in training ends with: where it stopped and how to go on."""
    last = Path(opt.save_dir) / "weights" / "last.pt"
    try:
        ckpt = load_checkpoint(last)
    except CheckpointError:
        return Interrupted(f"interrupted before the first checkpoint of {opt.save_dir}: nothing to resume")
    if ckpt.get("finished"):
        return Interrupted(f"interrupted after training finished; {last} is complete")
    done = ckpt["epoch"] + 1
    return Interrupted(f"interrupted at epoch {done + 1}/{opt.epochs} ({done} finished, saved in {last}); resume "
                       f"with: python classify/train.py --resume {last}")


# --------------------------------------------------------------------------------------------- training
def training_data(opt, device, hyp, cfg):
    """(data_dir, trainloader, testloader): the augmented training split and, on rank 0, the un-augmented evaluation
    split (None on other ranks), normalised as model YAML `cfg` expects. Local rank 0 of each node downloads or
    generates the dataset first."""
    with torch_distributed_zero_first(LOCAL_RANK):
        data_dir = check_cls_dataset(opt.data)
    norm = input_norm(cfg)
    workers, bs = opt.workers, opt.batch_size // WORLD_SIZE  # per process
    if device.type == "cpu":  # loader workers and torch's threads share the cores
        workers = share_cpu_cores(opt.workers, processes=int(os.getenv("LOCAL_WORLD_SIZE", 1)))
    trainloader = create_classification_dataloader(data_dir / "train", imgsz=opt.imgsz, batch_size=bs, augment=True,
                                                   cache=opt.cache or False, rank=LOCAL_RANK, workers=workers,
                                                   seed=opt.seed, hyp=hyp, norm=norm)
    names = trainloader.dataset.classes
    if len(names) == 1 and is_main_process():
        LOGGER.warning(f"WARNING ⚠️ {data_dir / 'train'} has one class folder ({names[0]}): every image gets it, so "
                       f"top-1 is 1.0 whatever the model learns; a classifier needs two classes or more")
    testloader = None
    if is_main_process():
        testloader = create_classification_dataloader(eval_split(data_dir), imgsz=opt.imgsz, batch_size=bs * 2,
                                                      augment=False, cache=opt.cache or False, rank=-1,
                                                      workers=workers, shuffle=False, norm=norm)
        if testloader.dataset.classes != names:  # ImageFolder numbers classes by folder: they must line up
            raise ValueError(f"{eval_split(data_dir)} has class folders {testloader.dataset.classes[:5]}... but "
                             f"{data_dir / 'train'} has {names[:5]}...: both splits need the same class folders")
    return data_dir, trainloader, testloader


def training_model(opt, cfg, nc, data_dir, device, resume_ckpt=None, source=None):
    """(model, scores, meta, fade): the model to train (a resumed run's, else built by build_model; with
    --fade-epochs the source's full width) and its Fade hook, or None."""
    scores = meta = fading = None
    bs = opt.batch_size // WORLD_SIZE
    if resume_ckpt is not None:
        if resume_ckpt["nc"] != nc:
            raise ValueError(f"--resume: the run was trained on {resume_ckpt['nc']} classes but {data_dir} now has "
                             f"{nc} class folders")
        model = ClassificationModel(resume_ckpt["yaml"])
        model.load_state_dict(resume_ckpt["model"])
        fading = resume_ckpt.get("fade")
    else:
        model, scores, meta = build_model(opt, nc, data_dir, device, bs, source, cfg)
        if opt.fade_epochs:
            model, fading = fade_start(model, scores, source, opt.prune_steps)
            if fading is not None:
                steps = f" in {opt.prune_steps} steps" if opt.prune_steps > 1 else ""
                LOGGER.info(f"{colorstr('fade:')} the pruned filters fade out over {opt.fade_epochs} epochs{steps}, "
                            f"then are cut")
    if fading is None:
        return model, scores, meta, None

    def score(m):  # --prune-steps: the next stage's filters, ranked on the model as trained by then
        return score_model(m, "the model being pruned", m.yaml, data_dir, opt.criterion, opt.rank_batches, bs,
                           opt.imgsz, device, opt.workers, opt.seed)[0]

    return model, scores, meta, Fade(model, fading, opt.fade_epochs, opt.prune_steps, opt.restart_lr, score,
                                     carry=opt.cut_optimizer == "carry")


def recipe_hooks(opt, hyp, nc, fade=None, teacher=None):
    """The training hooks of the options: the fade, distillation from --teacher, the --sparsity penalty, --hyp mixup."""
    hooks = [fade] if fade is not None else []
    if teacher is not None:
        distiller = Distiller(teacher, opt.distill_alpha, opt.distill_t, hyp["label_smoothing"], opt.distill_features)
        hooks.append(Distillation(distiller))
    if opt.sparsity:
        hooks.append(Sparsity(opt.sparsity))
    if hyp["mixup"]:
        hooks.append(Mixup(hyp["mixup"], nc))
    return hooks


def make_run_folder(opt, hyp, model, scores=None, meta=None, resumed=False):
    """The run folder, claimed for this run (rank 0 writes for every rank), with opt.yaml, hyp.yaml and ranks.pt."""
    save_dir = Path(opt.save_dir)
    run_lock.acquire(save_dir)
    (save_dir / "weights").mkdir(parents=True, exist_ok=True)
    if not resumed:
        with open(save_dir / "opt.yaml", "w") as f:
            yaml.safe_dump(plain_options(opt), f, sort_keys=False)
        save_hyp(hyp, save_dir / "hyp.yaml")
    if scores is not None and meta is not None:
        save_scores(save_dir / "ranks.pt", scores, meta)
    if opt.verbose:
        model_info(model, opt.imgsz, verbose=True, name="pruned")


def train(opt, device, resume_ckpt=None, source=None, teacher=None):
    """Set up the data, the model and the recipe's hooks, fit, and summarise; returns run()'s dict."""
    init_seeds(opt.seed + 1 + RANK, deterministic=True)
    hyp = training_hyp(opt, resume_ckpt)
    cfg = resume_ckpt["yaml"] if resume_ckpt is not None else model_cfg(opt)  # the model YAML, read once here
    data_dir, trainloader, testloader = training_data(opt, device, hyp, cfg)
    names = trainloader.dataset.classes
    memory_format = training_memory_format(device)
    # Teacher first: a wrong one fails before any ranking work; every DDP rank holds its own copy
    teacher = load_teacher(opt, names, device, memory_format, teacher) if opt.teacher else None
    model, scores, meta, fade = training_model(opt, cfg, len(names), data_dir, device, resume_ckpt, source)
    model.names = names
    set_dropout(model, opt.dropout)
    model = model.to(device, memory_format=memory_format)
    if is_main_process():  # only now: bad options and incompatible weights have failed before anything was written
        make_run_folder(opt, hyp, model, scores, meta, resumed=resume_ckpt is not None)
    hooks = recipe_hooks(opt, hyp, len(names), fade, teacher)
    trainer = Trainer(opt, model, trainloader, testloader, hyp, device, hooks)
    if resume_ckpt is not None:
        trainer.restore(resume_ckpt)
    else:
        trainer.start()
    epochs = trainer.fit()
    return finish(opt, trainer, data_dir, epochs)


def finish(opt, trainer, data_dir, epochs):
    """run()'s dict: the run's files and epochs and, from rank 0, the best epoch's accuracy and the model's costs."""
    save_dir = Path(opt.save_dir)
    best, last, csv = trainer.best, trainer.last, trainer.csv
    result = {"save_dir": save_dir, "best": best, "last": last, "results": csv, "epochs": epochs}
    if not is_main_process():
        return result
    try:
        plot_results(csv)
    except Exception as e:  # a plotting problem must not fail a finished training
        LOGGER.warning(f"WARNING ⚠️ could not plot {csv}: {e}")
    best_row = max(reversed(trainer.rows), key=lambda r: r[3])  # best.pt is rewritten on ties: the last of them
    LOGGER.info(f"\nTraining complete ({(time.time() - trainer.t0) / 3600:.3f} hours)")
    files = {"Results:": save_dir, "Best:": best, "Last:": last, "Curves:": save_dir / "results.png",
             "Ranks:": save_dir / "ranks.pt"}
    files = {k: v for k, v in files.items() if v.exists()}  # --nosave may skip best.pt; ranks only when pruned
    result.update(summarize(trainer.ema.ema, opt.imgsz, best_row, files))
    result.update(top1=best_row[3], top5=best_row[4])
    weights = best if best.exists() else last
    if not is_nested():  # inside another command (classify/prune.py), that command says what comes next
        LOGGER.info(f"Validate:    python classify/val.py --weights {weights} --data {data_dir} --img {opt.imgsz}\n"
                    f"Predict:     python classify/predict.py --weights {weights} --source im.jpg --img {opt.imgsz}")
    return result


def parse_opt(known=False, argv=None):
    parser = argparse.ArgumentParser(description="Train a (pruned) YOLOv5 classifier",
                                     formatter_class=HelpFormatter)
    add_cfg(parser, "model YAML (detector: cut at --cutoff); default: the architecture of --weights, else "
                    "yolov5s-cls.yaml")
    parser.add_argument("--rate", type=str, default=None,
                        help="compress rate(s): 0.3, a comma list, or '[0.]+[0.3]*8+[0.]' (one per YAML layer)")
    add_target_options(parser, "instead of --rate: allocate widths to this fraction of the unpruned FLOPs (0-1]",
                       "sensitivity.csv (classify/sensitivity.py) that --target-* allocates by; default: filter scores")
    add_weights(parser, "source classifier/detector .pt, '' = scratch", default="")
    add_criterion(parser, CRITERIA, DEFAULT_CRITERION)
    add_ranks(parser)
    add_rank_batches(parser)
    add_data(parser)
    parser.add_argument("--epochs", type=int, default=10, help="total training epochs")
    add_batch_size(parser, "train")
    add_imgsz(parser, when_omitted=f"{DEFAULT_IMGSZ} (not read from --weights)", what="train, val image size (pixels)")
    parser.add_argument("--nosave", action="store_true", help="only save final checkpoint")
    parser.add_argument("--save-period", type=int, default=-1,
                        help="also save weights/epoch{K}.pt (weights only) after every K-th epoch (< 1: never)")
    add_cache(parser)
    add_device(parser)
    add_workers(parser, per_process=True)
    add_run_folder(parser, "runs/train-cls")
    parser.add_argument("--pretrained", type=_bool, nargs="?", const=True, default=True,
                        help="start from --weights; --pretrained False trains the architecture from scratch")
    parser.add_argument("--optimizer", choices=OPTIMIZERS, default="Adam", help="optimizer")
    parser.add_argument("--lr0", type=float, default=0.001, help="initial learning rate")
    parser.add_argument("--decay", type=float, default=5e-5, help="weight decay")
    add_hyp(parser)
    parser.add_argument("--label-smoothing", type=float, default=None,
                        help="label smoothing epsilon (overrides --hyp's label_smoothing; default 0.1 there)")
    parser.add_argument("--teacher", type=str, default="",
                        help="trained classifier (same classes, any size) to distil from; '' = plain cross-entropy")
    add_distillation(parser)
    parser.add_argument("--distill-features", type=float, default=DISTILL_FEATURES,
                        help="weight of similarity-preserving distillation of the features the head's Linear reads "
                             "(0: logits only; README 'Pruning that pays')")
    parser.add_argument("--sparsity", type=float, default=0.0,
                        help="strength of the group-lasso penalty on the channel groups' BatchNorm scales (Network "
                             "Slimming): train a baseline with it so that pruning removes little (0: off)")
    parser.add_argument("--cutoff", type=int, default=None, help="detector YAML --cfg: layers kept before the head")
    parser.add_argument("--dropout", type=float, default=None, help="dropout (fraction)")
    parser.add_argument("--verbose", action="store_true", help="per-layer table of the pruned model")
    add_seed(parser)
    parser.add_argument("--cos-lr", action="store_true", help="cosine lr schedule")
    parser.add_argument("--patience", type=int, default=100, help="epochs without improvement before stopping")
    parser.add_argument("--resume", nargs="?", const=True, default=False, help="resume the latest or the given last.pt")
    add_plan(parser)
    parser.add_argument("--ema-tau", type=float, default=EMA_TAU,
                        help="optimizer steps over which the weight average's decay ramps up, as 1 - exp(-steps/tau) "
                             "(YOLOv5's %(default)g; a run of a few hundred steps barely averages with it)")
    parser.add_argument("--restart-lr", action="store_true",
                        help="with --fade-epochs: after the cut the lr schedule starts over from about --lr0 for the "
                             "remaining epochs (a warm restart for the pruned model)")
    parser.add_argument("--warmup-epochs", type=float, default=0.0,
                        help="the lr rises linearly from 0 over this many epochs of an optimizer that starts empty (at "
                             "the start; at a cut unless --cut-optimizer carry)")
    parser.add_argument("--cut-optimizer", choices=("new", "carry"), default="new",
                        help="with --fade-epochs: at the cut a new optimizer starts empty (new) or goes on with the "
                             "kept weights' Adam moments / SGD momentum, cut as the weights are (carry)")
    parser.add_argument("--prune-steps", type=int, default=1,
                        help="with --fade-epochs: fade and cut in this many stages, re-ranking the filters before each")
    parser.add_argument("--fade-epochs", type=int, default=0,
                        help="epochs over which the pruned filters fade out of the unpruned model before they are cut "
                             "(0: cut at once)")
    parser.add_argument("--local_rank", "--local-rank", type=int, default=-1, help="set by DDP launchers")
    opt = parser.parse_known_args(argv)[0] if known else parser.parse_args(argv)
    if opt.imgsz is None:  # training runs at a size of its own (a resumed run's stored one replaces this default)
        opt.imgsz = DEFAULT_IMGSZ
    return opt


def _bool(text):
    if str(text).lower() in {"true", "1", "yes"}:
        return True
    if str(text).lower() in {"false", "0", "no"}:
        return False
    raise argparse.ArgumentTypeError(f"expected True or False, not '{text}'")


def main(opt, source=None, teacher=None):
    """Train with the options `opt`; `source` and `teacher` are the --weights and --teacher models when the caller
    (classify/prune.py) read them already, so that no checkpoint is read twice."""
    resume_ckpt = None
    if opt.resume:
        opt, resume_ckpt = resume_options(opt)
    if is_main_process():
        print_args(vars(opt))
    device = select_device(opt.device, batch_size=opt.batch_size)
    if LOCAL_RANK != -1:
        device = init_distributed(device)
    try:
        if resume_ckpt is not None:  # a resumed run rebuilds its model from its own checkpoint
            source = teacher = None
        else:
            with torch_distributed_zero_first(LOCAL_RANK):  # a --weights download happens once per node
                source = check_options(opt, source)
            # rank 0 names the run folder; every rank must use the same one
            opt.save_dir = str(broadcast_object(
                increment_path(Path(opt.project) / opt.name, exist_ok=opt.exist_ok) if is_main_process() else None))
        check_writable(opt.save_dir)
        run_lock.check_free(opt.save_dir)  # claimed later, when the folder is made
        try:
            return train(opt, device, resume_ckpt, source, teacher)
        except KeyboardInterrupt:  # Ctrl-C: one line saying where training stopped, not a traceback
            raise interruption(opt) from None
    finally:
        if is_main_process() and getattr(opt, "save_dir", None):
            run_lock.release(opt.save_dir)
        cleanup()


def run(source=None, teacher_model=None, **kwargs):
    """Train from Python, e.g. `run(cfg='yolov5n-cls.yaml', data='builtin10', imgsz=64, epochs=3)`.

    Returns a dict: save_dir, best, last, results (paths), epochs run, top1/top5 of the best epoch, and the
    parameters/GFLOPs of the trained model and of its unpruned architecture. source / teacher_model: the models of
    `weights` / `teacher` when already in memory (the teacher is copied; the paths still name them in the run).
    """
    opt = parse_opt(True, argv=[])
    for k, v in kwargs.items():
        if not hasattr(opt, k):
            raise TypeError(f"run() got an unexpected option '{k}'")
        setattr(opt, k, v)
    return main(opt, source, teacher_model)


if __name__ == "__main__":
    run_cli(main, parse_opt())
