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
import warnings
from copy import deepcopy
from pathlib import Path

FILE = Path(__file__).resolve()
ROOT = FILE.parents[1]
if str(ROOT) not in sys.path:
    sys.path.append(str(ROOT))

import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import yaml  # noqa: E402
from torch.nn.parallel import DistributedDataParallel as DDP  # noqa: E402

from classify import val as validate  # noqa: E402
from classify.rank import score_filters, score_model  # noqa: E402
from models.budget import (check_reachable, chosen_target, drop_predictor, plan_for_target,  # noqa: E402
                           planned_yaml, read_sensitivity)
from models.criteria import CRITERIA, DEFAULT_CRITERION, check_criterion  # noqa: E402
from models.decay import ChannelFade  # noqa: E402
from models.experimental import attempt_load  # noqa: E402
from models.graph import channel_groups, make_divisible  # noqa: E402
from models.io.checkpoints import (CheckpointError, checkpoint_dict, float_state_dict, is_project_checkpoint,  # noqa: E402
                               load_checkpoint, save_checkpoint, to_cpu)
from models.io.ranks import load_scores, save_scores  # noqa: E402
from models.latency import check_latency_options  # noqa: E402
from models.prune import load_model, needs_scores, source_architecture  # noqa: E402
from models.sparsity import GroupLasso, check_sparsity  # noqa: E402
from models.yolo import (ClassificationModel, cfg_of, classifier_yaml, input_norm, resolve_rates,  # noqa: E402
                         with_plan)
from utils import run_lock  # noqa: E402
from utils.cli import (WORKERS_HELP, HelpFormatter, USER_ERRORS, Interrupted, UserError,  # noqa: E402
                       add_target_options, check_at_least, check_img_size, check_writable, print_args, run_cli)
from utils.dataloaders import create_classification_dataloader, share_cpu_cores  # noqa: E402
from utils.datasets import DEFAULT_DATA, check_cls_dataset, class_names, eval_split  # noqa: E402
from utils.device import select_device  # noqa: E402
from utils.distill import DISTILL_ALPHA, DISTILL_FEATURES, DISTILL_T, Distiller, check_distillation, output_classes  # noqa: E402
from utils.distributed import (LOCAL_RANK, RANK, WORLD_SIZE, broadcast_object, cleanup, de_parallel,  # noqa: E402
                               gather_object, init_distributed, is_main_process, torch_distributed_zero_first)
from utils.downloads import attempt_download  # noqa: E402
from utils.ema import EMA_TAU, ModelEMA  # noqa: E402
from utils.hyp import DEFAULT_HYP, load_hyp, save_hyp  # noqa: E402
from utils.log import LOGGER, colorstr, is_nested, progress_bar  # noqa: E402
from utils.metrics import EarlyStopping  # noqa: E402
from utils.model_info import model_info  # noqa: E402
from utils.optim import OPTIMIZERS, lr_scheduler, multi_tensor, smart_optimizer  # noqa: E402
from utils.paths import increment_path  # noqa: E402
from utils.plots import plot_results  # noqa: E402
from utils.profiling import median_latency  # noqa: E402
from utils.results import results_row, write_results  # noqa: E402
from utils.seeds import init_seeds, restore_rng_state, rng_for_rank, rng_state  # noqa: E402

LRF = 0.01  # final lr = lr0 * LRF (YOLOv5 classify)
MAX_GRAD_NORM = 10.0  # gradient clipping, as upstream
LOSS_READ_INTERVAL = 10  # steps between reads of the running loss for the progress bar (each read syncs CUDA)
RESUME_OVERRIDES = ("device", "workers")  # the only options a resumed run takes from the new command line


# ----------------------------------------------------------------------------------------------- options
def plain_options(opt):
    """vars(opt) with Paths as str, so a checkpoint holding it loads with weights_only=True."""
    return {k: str(v) if isinstance(v, Path) else v for k, v in vars(opt).items()}


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


def check_options(opt):
    """Fail fast, before any folder or file is made, on options that cannot work. Returns the --weights model (read
    from disk here, once: the architecture, the ranks and the copied filters all come from it), or None."""
    check_at_least("--epochs", opt.epochs, 1)
    check_at_least("--batch-size", opt.batch_size, 1)
    check_at_least("--workers", opt.workers, 0)
    opt.imgsz = check_img_size(opt.imgsz)
    if opt.batch_size % WORLD_SIZE:
        raise ValueError(f"--batch-size {opt.batch_size} is the total over {WORLD_SIZE} processes and must be a "
                         f"multiple of it")
    check_criterion(opt.criterion)
    if opt.rank_batches < 1:
        raise ValueError(f"--rank-batches must be at least 1, not {opt.rank_batches}")
    source = attempt_load(opt.weights) if opt.weights and opt.pretrained else None  # missing/bad file: one line
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


def allocated_widths(opt, cfg, nc, data_dir, device, batch_size, source=None):
    """(widths, scores, meta) for --target-*: the plan is chosen on rank 0 (from --sensitivity curves, else from the
    filter scores of --weights) and sent to every rank, so all build the same model."""
    target = chosen_target(opt.target_flops, opt.target_params, opt.target_latency, opt.rate)
    scores = meta = None
    if source is not None:
        scores, meta = shared_scores(opt, cfg, data_dir, device, batch_size, source)
    plan = None
    if is_main_process():
        drop = drop_predictor(scores, opt.sensitivity or None)
        plan = plan_for_target(cfg, *target, opt.imgsz, nc=nc, drop=drop, device=device, runtime=opt.latency_runtime,
                               batch=opt.latency_batch, cache_dir=opt.project)
    return broadcast_object(plan), scores, meta


def build_model(opt, nc, data_dir, device, batch_size, source=None):
    """(model, scores, meta): the pruned classifier with the top-ranked filters of `source` (the --weights model)
    copied in. Filters are ranked only where the model is narrower than the source (not for an already pruned
    checkpoint fine-tuned at its own rates)."""
    cfg = model_cfg(opt)
    scores = meta = None
    if chosen_target(opt.target_flops, opt.target_params, opt.target_latency, opt.rate):
        widths, scores, meta = allocated_widths(opt, cfg, nc, data_dir, device, batch_size, source)
        model = ClassificationModel(cfg, nc=nc, widths=widths)
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


def load_teacher(opt, names, device, memory_format):
    """The --teacher classifier, frozen, on this process's device, wrapped with the distillation loss settings."""
    teacher = attempt_load(teacher_path(opt.teacher), device=device)  # safe loader: weights-only unpickling
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


# --------------------------------------------------------------------------------------------- training
def training_checkpoint(model, ema, optimizer, scheduler, scaler, epoch, best_fitness, opt, hyp, rows, finished, rngs,
                        fade=None):
    """Everything --resume needs, on the CPU and weights-only loadable. epoch -1: saved before the first epoch.
    rngs: every process's RNG state (gather_rng_states), so each DDP rank resumes its own dropout stream.
    fade: while filters are fading (--fade-epochs), the pruned YAML and the scores that pick its filters."""
    ema.update_attr(model, include=("names", "nc", "yaml"))
    return to_cpu(checkpoint_dict(de_parallel(model), names=de_parallel(model).names, ema=float_state_dict(ema.ema),
                                  updates=ema.updates, optimizer=optimizer.state_dict(),
                                  scheduler=scheduler.state_dict(), scaler=scaler.state_dict(), epoch=epoch,
                                  best_fitness=best_fitness, opt=plain_options(opt), hyp=hyp, results=rows,
                                  rng=rngs, finished=finished, fade=fade))


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


def training_memory_format(device):
    """channels_last (NHWC) where convolutions run faster in it: CUDA (tensor cores under AMP) and CPU (oneDNN,
    about 15% faster training here); MPS keeps NCHW."""
    return torch.channels_last if device.type in {"cuda", "cpu"} else torch.contiguous_format


def train_step(model, images, labels, criterion, optimizer, scaler, ema=None, distiller=None, penalty=None):
    """One optimisation step: forward under AMP when the scaler is enabled (CUDA), backward, clip, step, EMA.

    With a distiller the loss is its distillation loss, the teacher seeing the same augmented images under AMP; with a
    penalty (--sparsity) its value is added. Returns the (detached) loss.
    """
    with torch.amp.autocast(device_type=images.device.type, enabled=scaler.is_enabled()):
        logits = model(images)
        loss = distiller(logits, images, labels) if distiller else criterion(logits, labels)
    if penalty is not None:  # outside autocast: summed over every channel, in float32
        loss = loss + penalty()
    scaler.scale(loss).backward()
    scaler.unscale_(optimizer)  # clip the true gradients, not the scaled ones
    torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm=MAX_GRAD_NORM, foreach=multi_tensor(images.device))
    scaler.step(optimizer)
    scaler.update()
    optimizer.zero_grad()
    if ema:
        ema.update(model)
    return loss.detach()


# ------------------------------------------------------------------------------------------ soft pruning
def fade_start(opt, model, scores, source):
    """(model to train, fade state): with --fade-epochs, the source's own architecture with its weights, and the
    first stage of the fade (see next_stage); otherwise (model, None)."""
    if not opt.fade_epochs:
        return model, None
    if scores is None:
        LOGGER.warning("WARNING ⚠️ --fade-epochs ignored: no filters are pruned from --weights here")
        return model, None
    full = load_model(source_architecture(model, getattr(source, "yaml", None)), source)
    steps = f" in {opt.prune_steps} steps" if opt.prune_steps > 1 else ""
    LOGGER.info(f"{colorstr('fade:')} the pruned filters fade out over {opt.fade_epochs} epochs{steps}, then are cut")
    return full, next_stage(full, model.yaml, scores, opt.prune_steps)


def next_stage(model, final_yaml, scores, steps):
    """The fade state of one of `steps` remaining stages from `model` (ranked by `scores`) towards `final_yaml`: 'yaml'
    the widths this stage cuts to (1/steps of the way, on the 8-grid; the final YAML at the last stage), 'scores',
    'final' and 'steps' left after it. Stage by stage the filters are re-ranked (--prune-steps, as HRank and
    Torch-Pruning's iterative_steps prune in steps)."""
    stage_yaml = final_yaml
    if steps > 1:
        with torch.device("meta"):
            final = {g.name: g.channels for g in channel_groups(ClassificationModel(final_yaml, nc=model.nc))}
        now = {g.name: g.channels for g in channel_groups(model) if not g.fixed}
        widths = {g: min(c, max(final[g], make_divisible(final[g] + (c - final[g]) * (steps - 1) / steps)))
                  for g, c in now.items()}
        stage_yaml = planned_yaml(final_yaml, widths)
    return {"yaml": stage_yaml, "scores": scores, "final": final_yaml, "steps": steps - 1}


def stage_epochs(opt, fading):
    """(first, end) epoch of the fade stage `fading`: --fade-epochs split evenly between --prune-steps stages."""
    k = opt.prune_steps - fading.get("steps", 0)  # 1-based stage number (a fade state without 'steps': one stage)
    return round(opt.fade_epochs * (k - 1) / opt.prune_steps), round(opt.fade_epochs * k / opt.prune_steps)


def rescored(model, opt, data_dir, device, batch_size):
    """Scores of the filters of the model being trained (a copy in eval mode), on rank 0 and sent to every rank."""
    result = None
    if is_main_process():
        ranking = deepcopy(de_parallel(model)).eval()
        result = score_model(ranking, "the model being pruned", ranking.yaml, data_dir, opt.criterion,
                             opt.rank_batches, batch_size, opt.imgsz, device, opt.workers, opt.seed)[0]
    return broadcast_object(result)


def fade_hooks(model, fading):
    """The ChannelFade hooked onto `model` for a fade state, or None."""
    if fading is None:
        return None
    with torch.device("meta"):
        pruned = ClassificationModel(fading["yaml"], nc=model.nc)
    fade = ChannelFade(model, {g.name: g.channels for g in channel_groups(pruned)}, fading["scores"])
    return fade.attach(model).freeze(model)


def optimizer_and_schedule(model, opt, epoch=0, epochs=None):
    """The optimizer and lr schedule for `model` over `epochs` (default --epochs), the schedule advanced to `epoch`."""
    optimizer = smart_optimizer(model, opt.optimizer, opt.lr0, momentum=0.9, decay=opt.decay)
    scheduler = lr_scheduler(optimizer, epochs or opt.epochs, lrf=LRF, cos_lr=opt.cos_lr)
    with warnings.catch_warnings():  # stepping before any optimizer step is intended here
        warnings.simplefilter("ignore", UserWarning)
        for _ in range(epoch):
            scheduler.step()
    return optimizer, scheduler


def cut_faded(model, ema, fading, opt, epoch, device, memory_format):
    """(model, ema, optimizer, scheduler) once the fade reached 0 at the end of `epoch`: the faded filters cut out
    (same outputs), a new optimizer whose schedule stands at the next epoch (--restart-lr: at the start of a schedule
    over the epochs left)."""
    def cut(m):
        pruned = ClassificationModel(fading["yaml"], nc=m.nc)
        pruned = load_model(pruned, m, fading["scores"]).to(device, memory_format=memory_format)
        pruned.names = m.names
        return pruned

    new = cut(de_parallel(model))
    if ema is not None:
        ema = ModelEMA(cut(ema.ema), tau=ema.tau, updates=ema.updates)
    if opt.restart_lr:
        optimizer, scheduler = optimizer_and_schedule(new, opt, epochs=opt.epochs - epoch - 1)
    else:
        optimizer, scheduler = optimizer_and_schedule(new, opt, epoch + 1)
    if RANK != -1:
        new = DDP(new, device_ids=[LOCAL_RANK] if device.type == "cuda" else None,
                  output_device=LOCAL_RANK if device.type == "cuda" else None)
    LOGGER.info(f"{colorstr('fade:')} faded filters cut: {sum(p.numel() for p in new.parameters()):,} parameters")
    return new, ema, optimizer, scheduler


def train(opt, device, resume_ckpt=None, source=None):
    save_dir = Path(opt.save_dir)
    wdir = save_dir / "weights"
    last, best, csv = wdir / "last.pt", wdir / "best.pt", save_dir / "results.csv"
    main_process = is_main_process()
    cuda = device.type == "cuda"
    bs = opt.batch_size // WORLD_SIZE  # per process
    epochs = opt.epochs
    init_seeds(opt.seed + 1 + RANK, deterministic=True)
    hyp = training_hyp(opt, resume_ckpt)

    # Data: local rank 0 of each node downloads/generates the dataset first
    with torch_distributed_zero_first(LOCAL_RANK):
        data_dir = check_cls_dataset(opt.data)
    norm = input_norm(resume_ckpt["yaml"] if resume_ckpt is not None else classifier_yaml(opt.cfg, opt.cutoff))
    workers = opt.workers
    if device.type == "cpu":  # loader workers and torch's threads share the cores
        workers = share_cpu_cores(opt.workers, processes=int(os.getenv("LOCAL_WORLD_SIZE", 1)))
    trainloader = create_classification_dataloader(data_dir / "train", imgsz=opt.imgsz, batch_size=bs, augment=True,
                                                   cache=opt.cache or False, rank=LOCAL_RANK, workers=workers,
                                                   seed=opt.seed, hyp=hyp, norm=norm)
    names = trainloader.dataset.classes
    nc = len(names)
    if nc == 1 and main_process:
        LOGGER.warning(f"WARNING ⚠️ {data_dir / 'train'} has one class folder ({names[0]}): every image gets it, so "
                       f"top-1 is 1.0 whatever the model learns; a classifier needs two classes or more")
    testloader = None
    if main_process:
        testloader = create_classification_dataloader(eval_split(data_dir), imgsz=opt.imgsz, batch_size=bs * 2,
                                                      augment=False, cache=opt.cache or False, rank=-1,
                                                      workers=workers, shuffle=False, norm=norm)
        if testloader.dataset.classes != names:  # ImageFolder numbers classes by folder: they must line up
            raise ValueError(f"{eval_split(data_dir)} has class folders {testloader.dataset.classes[:5]}... but "
                             f"{data_dir / 'train'} has {names[:5]}...: both splits need the same class folders")

    # Teacher first: a wrong one fails before any ranking work; every DDP rank holds its own copy
    teacher = load_teacher(opt, names, device, training_memory_format(device)) if opt.teacher else None

    # Model
    scores = meta = None
    if resume_ckpt is not None:
        if resume_ckpt["nc"] != nc:
            raise ValueError(f"--resume: the run was trained on {resume_ckpt['nc']} classes but {data_dir} now has "
                             f"{nc} class folders")
        model = ClassificationModel(resume_ckpt["yaml"])
        model.load_state_dict(resume_ckpt["model"])
        fading = resume_ckpt.get("fade")
    else:
        model, scores, meta = build_model(opt, nc, data_dir, device, bs, source)
        model, fading = fade_start(opt, model, scores, source)
    fade = fade_hooks(model, fading)
    model.names = names
    set_dropout(model, opt.dropout)
    memory_format = training_memory_format(device)
    model = model.to(device, memory_format=memory_format)

    # Run folder (only now: bad options and incompatible weights have failed before anything was written)
    if main_process:
        run_lock.acquire(save_dir)  # this run's alone while it trains (rank 0 writes for every rank)
        wdir.mkdir(parents=True, exist_ok=True)
        if resume_ckpt is None:
            with open(save_dir / "opt.yaml", "w") as f:
                yaml.safe_dump(plain_options(opt), f, sort_keys=False)
            save_hyp(hyp, save_dir / "hyp.yaml")
        if scores is not None and meta is not None:
            save_scores(save_dir / "ranks.pt", scores, meta)
        if opt.verbose:
            model_info(model, opt.imgsz, verbose=True, name="pruned")

    # Optimizer, schedule, EMA (a deep copy: it carries the fade's hooks too), AMP
    optimizer, scheduler = optimizer_and_schedule(model, opt)
    ema = ModelEMA(model, tau=opt.ema_tau) if main_process else None
    scaler = torch.amp.GradScaler("cuda", enabled=cuda)
    criterion = nn.CrossEntropyLoss(label_smoothing=hyp["label_smoothing"])
    distiller = None
    if teacher:
        distiller = Distiller(teacher, opt.distill_alpha, opt.distill_t, hyp["label_smoothing"], opt.distill_features)
        distiller.watch(model)
    penalty = GroupLasso(model, opt.sparsity) if opt.sparsity else None
    stopper = EarlyStopping(patience=opt.patience)
    start_epoch, best_fitness, rows = 0, 0.0, []

    if resume_ckpt is not None:
        optimizer.load_state_dict(resume_ckpt["optimizer"])  # after the scheduler: keeps its lr, not lf(0)
        scheduler.load_state_dict(resume_ckpt["scheduler"])
        if resume_ckpt.get("scaler"):
            scaler.load_state_dict(resume_ckpt["scaler"])
        if ema:
            ema.ema.load_state_dict(resume_ckpt["ema"])
            ema.updates = resume_ckpt["updates"]
        start_epoch, best_fitness = resume_ckpt["epoch"] + 1, resume_ckpt["best_fitness"]
        rows = [list(r) for r in resume_ckpt["results"]]
        for r in rows:  # replay so patience counts from the true best epoch
            stopper(r[0], r[3])
        if main_process:
            write_results(csv, rows)  # drops any row of the epoch the kill interrupted
        rng = rng_for_rank(resume_ckpt["rng"], RANK, WORLD_SIZE)
        if rng is not None:
            restore_rng_state(rng)
        elif RANK == 1:
            LOGGER.warning("WARNING ⚠️ the run had another number of processes: ranks other than 0 start new random "
                           "streams (dropout) instead of resuming theirs")
        LOGGER.info(f"{colorstr('resume:')} {opt.resume} from epoch {start_epoch + 1}/{epochs}")
    else:  # training draws the same random numbers however the model was built (ranked here, --ranks, scratch)
        init_seeds(opt.seed + 1 + RANK)
        rngs = gather_object(rng_state())  # every rank takes part, rank 0 saves
        if main_process and not opt.nosave:  # a Ctrl-C or kill in the first epoch still leaves a run to resume
            save_checkpoint(training_checkpoint(model, ema, optimizer, scheduler, scaler, -1, best_fitness, opt, hyp,
                                                rows, False, rngs, fading), last)

    if RANK != -1:
        model = DDP(model, device_ids=[LOCAL_RANK] if cuda else None, output_device=LOCAL_RANK if cuda else None)

    t0 = time.time()
    if main_process:
        LOGGER.info(f"Image sizes {opt.imgsz} train, {opt.imgsz} test\n"
                    f"Using {trainloader.num_workers * WORLD_SIZE} dataloader workers"
                    f"{f', {torch.get_num_threads()} torch threads' if device.type == 'cpu' else ''}\n"
                    f"Logging results to {colorstr('bold', save_dir)}\n"
                    f"Starting {Path(str(de_parallel(model).yaml.get('yaml_file', 'model'))).stem} training on {data_dir} dataset with {nc} classes for "
                    f"{epochs} epochs...\n\n"
                    f"{'Epoch':>10}{'GPU_mem':>10}{'train_loss':>12}{'val_loss':>12}{'top1_acc':>12}{'top5_acc':>12}")
    epoch = start_epoch - 1
    for epoch in range(start_epoch, epochs):
        tloss, vloss, top1, top5 = 0.0, 0.0, 0.0, 0.0
        loss_sum = torch.zeros((), device=device)
        model.train()
        trainloader.sampler.set_epoch(epoch)  # order and augmentation follow (seed, epoch): exact resume
        nb = len(trainloader)
        pbar = enumerate(trainloader)
        if main_process:
            pbar = progress_bar(pbar, total=nb, bar_format=validate.TQDM_BAR_FORMAT)
        first, end = stage_epochs(opt, fading) if fade is not None else (0, 0)  # this fade stage's epochs
        for i, (images, labels) in pbar:
            if fade is not None:  # linear from 1 to 0 over the stage's steps: 0 at its last step
                fade.factor = max(0.0, 1.0 - ((epoch - first) * nb + i + 1) / ((end - first) * nb))
            images = images.to(device, non_blocking=True, memory_format=memory_format)
            labels = labels.to(device, non_blocking=True)
            loss = train_step(model, images, labels, criterion, optimizer, scaler, ema, distiller, penalty)
            if main_process:
                loss_sum += loss
                if i % LOSS_READ_INTERVAL == 0 or i == nb - 1:  # .item() waits for the GPU: not every step
                    tloss = loss_sum.item() / (i + 1)
                    mem = f"{torch.cuda.memory_reserved(device) / 1e9 if cuda else 0:.3g}G"
                    pbar.desc = f"{f'{epoch + 1}/{epochs}':>10}{mem:>10}{tloss:>12.3g}" + " " * validate.VAL_COLUMNS
                if i == nb - 1:  # validate the EMA on the same progress line
                    top1, top5, vloss = validate.run(model=ema.ema, dataloader=testloader, criterion=criterion,
                                                     pbar=pbar)
                    if pbar.disable:  # no bar (a log file): the epoch's row as one line
                        LOGGER.info(pbar.desc)
        lr = optimizer.param_groups[0]["lr"]  # this epoch's, before a cut brings a new optimizer
        scheduler.step()
        if fade is not None and epoch + 1 == end:  # the faded filters output zeros now: cut them
            model, ema, optimizer, scheduler = cut_faded(model, ema, fading, opt, epoch, device, memory_format)
            if fading.get("steps"):  # --prune-steps: the next stage, its filters ranked on the model as it is now
                fading = next_stage(de_parallel(model), fading["final"], rescored(model, opt, data_dir, device, bs),
                                    fading["steps"])
                fade = fade_hooks(de_parallel(model), fading)
                if ema:
                    fade.attach(ema.ema)
            else:
                fade = fading = None
            if distiller:
                distiller.watch(de_parallel(model))
            if penalty is not None:
                penalty = GroupLasso(de_parallel(model), opt.sparsity)

        stop = False
        rngs = gather_object(rng_state())  # every rank takes part, rank 0 saves
        if main_process:
            fitness = top1 if fade is None else 0.0  # while fading, the full-width weights are not the pruned model
            improved = fade is None and fitness >= best_fitness
            best_fitness = max(best_fitness, fitness)
            rows.append(results_row(epoch, tloss, vloss, top1, top5, lr))
            write_results(csv, rows)
            stop = stopper(epoch, fitness) if fade is None else False  # patience counts from the cut
            final = stop or epoch + 1 == epochs
            if not opt.nosave or final:
                ckpt = training_checkpoint(model, ema, optimizer, scheduler, scaler, epoch, best_fitness, opt, hyp, rows,
                                           final, rngs, fading)
                save_checkpoint(ckpt, last)
                if improved:  # best.pt is for use, not for resuming: the EMA weights only, no training state
                    save_checkpoint(dict(ckpt, model=ckpt["ema"], ema=None, optimizer=None, scheduler=None,
                                         scaler=None, rng=None), best)
                del ckpt
        if broadcast_object(stop):  # every rank stops together
            break

    result = {"save_dir": save_dir, "best": best, "last": last, "results": csv, "epochs": epoch + 1}
    if main_process:
        try:
            plot_results(csv)
        except Exception as e:  # a plotting problem must not fail a finished training
            LOGGER.warning(f"WARNING ⚠️ could not plot {csv}: {e}")
        best_row = max(reversed(rows), key=lambda r: r[3])  # best.pt is rewritten on ties: the last of them
        LOGGER.info(f"\nTraining complete ({(time.time() - t0) / 3600:.3f} hours)")
        files = {"Results:": save_dir, "Best:": best, "Last:": last, "Curves:": save_dir / "results.png",
                 "Ranks:": save_dir / "ranks.pt"}
        files = {k: v for k, v in files.items() if v.exists()}  # --nosave may skip best.pt; ranks only when pruned
        result.update(summarize(ema.ema, opt.imgsz, best_row, files))
        result.update(top1=best_row[3], top5=best_row[4])
        weights = best if best.exists() else last
        if not is_nested():  # inside another command (classify/prune.py), that command says what comes next
            LOGGER.info(f"Validate:    python classify/val.py --weights {weights} --data {data_dir} --img {opt.imgsz}\n"
                        f"Predict:     python classify/predict.py --weights {weights} --source im.jpg --img {opt.imgsz}")
    return result


def parse_opt(known=False, argv=None):
    parser = argparse.ArgumentParser(description="Train a (pruned) YOLOv5 classifier",
                                     formatter_class=HelpFormatter)
    parser.add_argument("--cfg", type=str, default="",
                        help="model YAML (detector: cut at --cutoff); default: the architecture of --weights, else yolov5s-cls.yaml")
    parser.add_argument("--rate", type=str, default=None,
                        help="compress rate(s): 0.3, a comma list, or '[0.]+[0.3]*8+[0.]' (one per YAML layer)")
    add_target_options(parser, "instead of --rate: allocate widths to this fraction of the unpruned FLOPs (0-1]",
                       "sensitivity.csv (classify/sensitivity.py) that --target-* allocates by; default: filter scores")
    parser.add_argument("--weights", "--model", type=str, default="", help="source classifier/detector .pt, '' = scratch")
    parser.add_argument("--criterion", type=str, default=DEFAULT_CRITERION, choices=CRITERIA,
                        help="filter ranking criterion (see classify/rank.py --help)")
    parser.add_argument("--ranks", type=str, default="", help="scores file from classify/rank.py (skips ranking)")
    parser.add_argument("--rank-batches", type=int, default=5, help="training batches scored by data criteria")
    parser.add_argument("--data", type=str, default=DEFAULT_DATA, help="dataset name or ImageFolder root")
    parser.add_argument("--epochs", type=int, default=10, help="total training epochs")
    parser.add_argument("--batch-size", type=int, default=64, help="total batch size for all processes")
    parser.add_argument("--imgsz", "--img", "--img-size", type=int, default=224, help="train, val image size (pixels)")
    parser.add_argument("--nosave", action="store_true", help="only save final checkpoint")
    parser.add_argument("--cache", type=str, nargs="?", const="ram", choices=("ram", "disk"),
                        help="cache decoded images in 'ram' (--cache alone) or on 'disk' (as <image>.npy); None = no cache")
    parser.add_argument("--device", default="", help="cuda device, i.e. 0 or 0,1,2,3 or cpu")
    parser.add_argument("--workers", type=int, default=8, help=WORKERS_HELP + " per process")
    parser.add_argument("--project", default=ROOT / "runs/train-cls", help="save to project/name")
    parser.add_argument("--name", default="exp", help="save to project/name")
    parser.add_argument("--exist-ok", action="store_true", help="existing project/name ok, do not increment")
    parser.add_argument("--pretrained", type=_bool, nargs="?", const=True, default=True,
                        help="start from --weights; --pretrained False trains the architecture from scratch")
    parser.add_argument("--optimizer", choices=OPTIMIZERS, default="Adam", help="optimizer")
    parser.add_argument("--lr0", type=float, default=0.001, help="initial learning rate")
    parser.add_argument("--decay", type=float, default=5e-5, help="weight decay")
    parser.add_argument("--hyp", type=str, default="",
                        help=f"YAML of augmentation and loss settings (scale, fliplr, flipud, jitter, label_smoothing); "
                             f"missing keys and '' take {DEFAULT_HYP.relative_to(ROOT)}")
    parser.add_argument("--label-smoothing", type=float, default=None,
                        help="label smoothing epsilon (overrides --hyp's label_smoothing; default 0.1 there)")
    parser.add_argument("--teacher", type=str, default="",
                        help="trained classifier (same classes, any size) to distil from; '' = plain cross-entropy")
    parser.add_argument("--distill-alpha", type=float, default=DISTILL_ALPHA,
                        help="weight a of the teacher term in (1-a)*CE + a*T^2*KL (default %(default)s, measured on "
                             "digits: README 'Recovering accuracy')")
    parser.add_argument("--distill-t", type=float, default=DISTILL_T,
                        help="distillation temperature T (default %(default)s, measured with --distill-alpha)")
    parser.add_argument("--distill-features", type=float, default=DISTILL_FEATURES,
                        help="weight of similarity-preserving distillation of the features the head's Linear reads "
                             "(0: logits only; README 'Pruning that pays')")
    parser.add_argument("--sparsity", type=float, default=0.0,
                        help="strength of the group-lasso penalty on the channel groups' BatchNorm scales (Network "
                             "Slimming): train a baseline with it so that pruning removes little (0: off)")
    parser.add_argument("--cutoff", type=int, default=None, help="detector YAML --cfg: layers kept before the head")
    parser.add_argument("--dropout", type=float, default=None, help="dropout (fraction)")
    parser.add_argument("--verbose", action="store_true", help="per-layer table of the pruned model")
    parser.add_argument("--seed", type=int, default=0, help="global training seed")
    parser.add_argument("--cos-lr", action="store_true", help="cosine lr schedule")
    parser.add_argument("--patience", type=int, default=100, help="epochs without improvement before stopping")
    parser.add_argument("--resume", nargs="?", const=True, default=False, help="resume the latest or the given last.pt")
    parser.add_argument("--plan", type=str, default="", choices=("", "ultralytics"),
                        help="'ultralytics': prune only widths ultralytics' YAML can say (Classify's 1280 and PSA "
                             "feed-forwards kept), so YOLO(exported file).train() keeps the pruned model")
    parser.add_argument("--ema-tau", type=float, default=EMA_TAU,
                        help="optimizer steps over which the weight average's decay ramps up, as 1 - exp(-steps/tau) "
                             "(YOLOv5's %(default)g; a run of a few hundred steps barely averages with it)")
    parser.add_argument("--restart-lr", action="store_true",
                        help="with --fade-epochs: after the cut the lr schedule starts over from about --lr0 for the "
                             "remaining epochs (a warm restart for the pruned model)")
    parser.add_argument("--prune-steps", type=int, default=1,
                        help="with --fade-epochs: fade and cut in this many stages, re-ranking the filters before each")
    parser.add_argument("--fade-epochs", type=int, default=0,
                        help="epochs over which the pruned filters fade out of the unpruned model before they are cut "
                             "(0: cut at once)")
    parser.add_argument("--local_rank", "--local-rank", type=int, default=-1, help="set by DDP launchers")
    return parser.parse_known_args(argv)[0] if known else parser.parse_args(argv)


def _bool(text):
    if str(text).lower() in {"true", "1", "yes"}:
        return True
    if str(text).lower() in {"false", "0", "no"}:
        return False
    raise argparse.ArgumentTypeError(f"expected True or False, not '{text}'")


def main(opt):
    resume_ckpt = None
    if opt.resume:
        opt, resume_ckpt = resume_options(opt)
    if is_main_process():
        print_args(vars(opt))
    device = select_device(opt.device, batch_size=opt.batch_size)
    if LOCAL_RANK != -1:
        device = init_distributed(device)
    try:
        source = None
        if resume_ckpt is None:
            with torch_distributed_zero_first(LOCAL_RANK):  # a --weights download happens once per node
                source = check_options(opt)
            # rank 0 names the run folder; every rank must use the same one
            opt.save_dir = str(broadcast_object(
                increment_path(Path(opt.project) / opt.name, exist_ok=opt.exist_ok) if is_main_process() else None))
        check_writable(opt.save_dir)
        run_lock.check_free(opt.save_dir)  # claimed later, when the folder is made
        try:
            return train(opt, device, resume_ckpt, source)
        except KeyboardInterrupt:  # Ctrl-C: one line saying where training stopped, not a traceback
            raise interruption(opt) from None
    finally:
        if is_main_process() and getattr(opt, "save_dir", None):
            run_lock.release(opt.save_dir)
        cleanup()


def run(**kwargs):
    """Train from Python, e.g. `run(cfg='yolov5n-cls.yaml', data='builtin10', imgsz=64, epochs=3)`.

    Returns a dict: save_dir, best, last, results (paths), epochs run, top1/top5 of the best epoch, and the
    parameters/GFLOPs of the trained model and of its unpruned architecture.
    """
    opt = parse_opt(True, argv=[])
    for k, v in kwargs.items():
        if not hasattr(opt, k):
            raise TypeError(f"run() got an unexpected option '{k}'")
        setattr(opt, k, v)
    return main(opt)


if __name__ == "__main__":
    run_cli(main, parse_opt())
