"""Fit a classifier: epochs of optimisation steps (AMP, clipped gradients, a weight average), the average validated
every epoch, results.csv and checkpoints that resume exactly.

What a pruning recipe adds to training (distillation, a sparsity penalty, filters that fade out and are cut) is a Hook
(models/recipes.py): the loop calls its hooks at fixed points and knows none of them.
"""

import time
import warnings
from pathlib import Path

import torch
import torch.nn as nn
from torch.nn.parallel import DistributedDataParallel as DDP

from models.io.checkpoints import checkpoint_dict, float_state_dict, save_checkpoint, to_cpu
from utils.distributed import LOCAL_RANK, RANK, WORLD_SIZE, broadcast_object, de_parallel, gather_object, is_main_process
from utils.ema import ModelEMA
from utils.evaluate import TQDM_BAR_FORMAT, VAL_COLUMNS, validate
from utils.log import LOGGER, colorstr, progress_bar
from utils.metrics import EarlyStopping
from utils.optim import lr_scheduler, multi_tensor, smart_optimizer
from utils.results import results_row, write_results
from utils.seeds import init_seeds, restore_rng_state, rng_for_rank, rng_state

LRF = 0.01  # final lr = lr0 * LRF (YOLOv5 classify)
MAX_GRAD_NORM = 10.0  # gradient clipping, as upstream
LOSS_READ_INTERVAL = 10  # steps between reads of the running loss for the progress bar (each read syncs CUDA)


def plain_options(opt):
    """vars(opt) with Paths as str, so a checkpoint holding it loads with weights_only=True."""
    return {k: str(v) if isinstance(v, Path) else v for k, v in vars(opt).items()}


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


def optimizer_and_schedule(model, opt, epoch=0, epochs=None):
    """The optimizer and lr schedule for `model` over `epochs` (default --epochs), the schedule advanced to `epoch`."""
    optimizer = smart_optimizer(model, opt.optimizer, opt.lr0, momentum=0.9, decay=opt.decay)
    scheduler = lr_scheduler(optimizer, epochs or opt.epochs, lrf=LRF, cos_lr=opt.cos_lr)
    with warnings.catch_warnings():  # stepping before any optimizer step is intended here
        warnings.simplefilter("ignore", UserWarning)
        for _ in range(epoch):
            scheduler.step()
    return optimizer, scheduler


def ddp(model, device):
    """`model` wrapped for DistributedDataParallel under torchrun, else itself."""
    if RANK == -1:
        return model
    cuda = device.type == "cuda"
    return DDP(model, device_ids=[LOCAL_RANK] if cuda else None, output_device=LOCAL_RANK if cuda else None)


class Hook:
    """One piece of a training recipe. Trainer calls each method at its point of the loop; the defaults do nothing."""

    loss = None  # a callable (logits, images, labels) -> loss that replaces the cross-entropy (a Distiller)
    penalty = None  # a callable () -> a term added to every step's loss (a GroupLasso)
    settled = True  # False while the model trained is not yet the one the run delivers: no best.pt, no patience

    def setup(self, trainer):
        """The model, its weight average and the optimizer exist (the model not yet wrapped for DDP)."""

    def before_epoch(self, trainer, epoch):
        pass

    def before_batch(self, trainer, epoch, i, batches):
        pass

    def batch(self, images, labels):
        """The batch the step trains on (a hook may mix it); labels may become class probabilities."""
        return images, labels

    def after_epoch(self, trainer, epoch):
        """The epoch is trained and the lr stepped; a hook may swap the model here (Trainer.replace_model)."""

    def model_replaced(self, trainer):
        """Another hook replaced trainer.model: follow the new model."""

    def checkpoint(self):
        """Entries of the training checkpoint that this hook's state needs to resume."""
        return {}


class Trainer:
    """Fits `model` on `trainloader`, validating its weight average on `testloader` (rank 0) and saving the run under
    opt.save_dir. Options read: epochs, seed, nosave, patience, ema_tau, optimizer, lr0, decay, cos_lr, warmup_epochs,
    imgsz."""

    def __init__(self, opt, model, trainloader, testloader, hyp, device, hooks=()):
        self.opt, self.model, self.hyp, self.device, self.hooks = opt, model, hyp, device, list(hooks)
        self.trainloader, self.testloader = trainloader, testloader
        self.main_process = is_main_process()
        self.memory_format = training_memory_format(device)
        wdir = Path(opt.save_dir) / "weights"
        self.last, self.best, self.csv = wdir / "last.pt", wdir / "best.pt", Path(opt.save_dir) / "results.csv"
        self.optimizer, self.scheduler = optimizer_and_schedule(model, opt)
        self.ema = ModelEMA(model, tau=opt.ema_tau) if self.main_process else None  # a deep copy: hooks included
        self.scaler = torch.amp.GradScaler("cuda", enabled=device.type == "cuda")
        self.criterion = nn.CrossEntropyLoss(label_smoothing=hyp["label_smoothing"])
        for hook in self.hooks:
            hook.setup(self)
        self.stopper = EarlyStopping(patience=opt.patience)
        self.start_epoch, self.best_fitness, self.rows = 0, 0.0, []
        self.replaced = False
        self.warmup_from = 0  # the step at which the optimizer in use started empty (--warmup-epochs ramps from there)

    # ------------------------------------------------------------------------------------------ start or resume
    def start(self):
        """A new run: training draws the same random numbers however the model was built; a checkpoint at epoch -1
        lets a Ctrl-C or kill in the first epoch resume."""
        init_seeds(self.opt.seed + 1 + RANK)
        rngs = gather_object(rng_state())  # every rank takes part, rank 0 saves
        if self.main_process and not self.opt.nosave:
            save_checkpoint(self.checkpoint(-1, False, rngs), self.last)

    def restore(self, ckpt):
        """Continue the run of training checkpoint `ckpt` where it stopped."""
        self.optimizer.load_state_dict(ckpt["optimizer"])  # after the scheduler: keeps its lr, not lf(0)
        self.scheduler.load_state_dict(ckpt["scheduler"])
        if ckpt.get("scaler"):
            self.scaler.load_state_dict(ckpt["scaler"])
        if self.ema:
            self.ema.ema.load_state_dict(ckpt["ema"])
            self.ema.updates = ckpt["updates"]
        self.start_epoch, self.best_fitness = ckpt["epoch"] + 1, ckpt["best_fitness"]
        self.warmup_from = ckpt.get("warmup_from", 0)
        self.rows = [list(r) for r in ckpt["results"]]
        for r in self.rows:  # replay so patience counts from the true best epoch
            self.stopper(r[0], r[3])
        if self.main_process:
            write_results(self.csv, self.rows)  # drops any row of the epoch the kill interrupted
        rng = rng_for_rank(ckpt["rng"], RANK, WORLD_SIZE)
        if rng is not None:
            restore_rng_state(rng)
        elif RANK == 1:
            LOGGER.warning("WARNING ⚠️ the run had another number of processes: ranks other than 0 start new random "
                           "streams (dropout) instead of resuming theirs")
        LOGGER.info(f"{colorstr('resume:')} {self.opt.resume} from epoch {self.start_epoch + 1}/{self.opt.epochs}")

    # --------------------------------------------------------------------------------------------------- fit
    def fit(self):
        """Train the epochs left; returns the number of epochs run in all (an early stop ends sooner)."""
        self.model = ddp(self.model, self.device)
        self.t0 = time.time()
        self.log_start()
        epoch = self.start_epoch - 1
        for epoch in range(self.start_epoch, self.opt.epochs):
            for hook in self.hooks:
                hook.before_epoch(self, epoch)
            tloss, vloss, top1, top5 = self.train_epoch(epoch)
            lr = self.optimizer.param_groups[0]["lr"]  # this epoch's, before a hook brings a new optimizer
            self.scheduler.step()
            for hook in self.hooks:
                hook.after_epoch(self, epoch)
            if self.replaced:
                self.replaced = False
                for hook in self.hooks:
                    hook.model_replaced(self)
            if self.end_epoch(epoch, results_row(epoch, tloss, vloss, top1, top5, lr)):
                break
        return epoch + 1

    def log_start(self):
        if not self.main_process:
            return
        opt, cpu = self.opt, self.device.type == "cpu"
        data = Path(self.trainloader.dataset.root).parent
        stem = Path(str(de_parallel(self.model).yaml.get("yaml_file", "model"))).stem
        LOGGER.info(f"Image sizes {opt.imgsz} train, {opt.imgsz} test\n"
                    f"Using {self.trainloader.num_workers * WORLD_SIZE} dataloader workers"
                    f"{f', {torch.get_num_threads()} torch threads' if cpu else ''}\n"
                    f"Logging results to {colorstr('bold', opt.save_dir)}\n"
                    f"Starting {stem} training on {data} dataset with {len(self.trainloader.dataset.classes)} classes "
                    f"for {opt.epochs} epochs...\n\n"
                    f"{'Epoch':>10}{'GPU_mem':>10}{'train_loss':>12}{'val_loss':>12}{'top1_acc':>12}{'top5_acc':>12}")

    def objective(self):
        """(loss replacing the cross-entropy or None, penalty or None) of the hooks, for this step."""
        loss = next((h.loss for h in self.hooks if h.loss is not None), None)
        terms = [h.penalty for h in self.hooks if h.penalty is not None]
        penalty = terms[0] if len(terms) == 1 else (lambda: sum(t() for t in terms)) if terms else None
        return loss, penalty

    def train_epoch(self, epoch):
        """(train loss, val loss, top1, top5) of one epoch; the validation runs on rank 0 on the same progress line."""
        tloss, vloss, top1, top5 = 0.0, 0.0, 0.0, 0.0
        loss_sum = torch.zeros((), device=self.device)
        self.model.train()
        self.trainloader.sampler.set_epoch(epoch)  # order and augmentation follow (seed, epoch): exact resume
        nb = len(self.trainloader)
        pbar = enumerate(self.trainloader)
        if self.main_process:
            pbar = progress_bar(pbar, total=nb, bar_format=TQDM_BAR_FORMAT)
        loss_fn, penalty = self.objective()
        scheduled = [g["lr"] for g in self.optimizer.param_groups]
        for i, (images, labels) in pbar:
            for hook in self.hooks:
                hook.before_batch(self, epoch, i, nb)
            self.warm_up(scheduled, epoch * nb + i, nb)
            images = images.to(self.device, non_blocking=True, memory_format=self.memory_format)
            labels = labels.to(self.device, non_blocking=True)
            for hook in self.hooks:
                images, labels = hook.batch(images, labels)
            loss = train_step(self.model, images, labels, self.criterion, self.optimizer, self.scaler, self.ema,
                              loss_fn, penalty)
            if self.main_process:
                loss_sum += loss
                if i % LOSS_READ_INTERVAL == 0 or i == nb - 1:  # .item() waits for the GPU: not every step
                    tloss = loss_sum.item() / (i + 1)
                    self.show_progress(pbar, epoch, tloss)
                if i == nb - 1:  # validate the EMA on the same progress line
                    top1, top5, vloss = validate(self.ema.ema, self.testloader, self.criterion, pbar=pbar)
                    if pbar.disable:  # no bar (a log file): the epoch's row as one line
                        LOGGER.info(pbar.desc)
        for g, lr in zip(self.optimizer.param_groups, scheduled):  # the schedule steps on from its own values
            g["lr"] = lr
        return tloss, vloss, top1, top5

    def warm_up(self, scheduled, step, batches):
        """--warmup-epochs W: the lr of an optimizer that started empty rises linearly from 0 to the schedule's over
        its first W·batches steps (Adam's first steps move every weight by about lr, whatever its gradient)."""
        steps = round(getattr(self.opt, "warmup_epochs", 0.0) * batches)  # runs saved before the option: none
        k = step - self.warmup_from
        if 0 <= k < steps:
            for g, lr in zip(self.optimizer.param_groups, scheduled):
                g["lr"] = lr * (k + 1) / steps

    def show_progress(self, pbar, epoch, tloss):
        cuda = self.device.type == "cuda"
        mem = f"{torch.cuda.memory_reserved(self.device) / 1e9 if cuda else 0:.3g}G"
        pbar.desc = f"{f'{epoch + 1}/{self.opt.epochs}':>10}{mem:>10}{tloss:>12.3g}" + " " * VAL_COLUMNS

    def replace_model(self, model, ema, epoch, restart=False, state=None):
        """Train `model` (and average into `ema`) from the next epoch on, with a new optimizer whose schedule stands
        at the next epoch (restart: at the start of a schedule over the epochs left). `state`: {parameter name:
        optimizer state} the new optimizer goes on from (else it starts empty, and warms up again). Other hooks are
        told."""
        if restart:
            self.optimizer, self.scheduler = optimizer_and_schedule(model, self.opt, epochs=self.opt.epochs - epoch - 1)
        else:
            self.optimizer, self.scheduler = optimizer_and_schedule(model, self.opt, epoch + 1)
        if state:
            for name, p in model.named_parameters():
                if state.get(name):
                    self.optimizer.state[p] = state[name]
        else:
            self.warmup_from = (epoch + 1) * len(self.trainloader)
        self.model, self.ema, self.replaced = ddp(model, self.device), ema, True

    # ------------------------------------------------------------------------------------------- results, save
    def end_epoch(self, epoch, row):
        """Log the epoch's results row, save last.pt (and best.pt when it improved); True when training stops."""
        stop = False
        rngs = gather_object(rng_state())  # every rank takes part, rank 0 saves
        if self.main_process:
            settled = all(h.settled for h in self.hooks)
            fitness = row[3] if settled else 0.0  # e.g. while fading, the full-width weights are not the result
            improved = settled and fitness >= self.best_fitness
            self.best_fitness = max(self.best_fitness, fitness)
            self.rows.append(row)
            write_results(self.csv, self.rows)
            stop = self.stopper(epoch, fitness) if settled else False  # patience counts from then
            final = stop or epoch + 1 == self.opt.epochs
            if not self.opt.nosave or final:
                ckpt = self.checkpoint(epoch, final, rngs)
                save_checkpoint(ckpt, self.last)
                weights = dict(ckpt, model=ckpt["ema"], ema=None, optimizer=None, scheduler=None, scaler=None, rng=None)
                if improved:  # best.pt is for use, not for resuming: the EMA weights only, no training state
                    save_checkpoint(weights, self.best)
                period = getattr(self.opt, "save_period", -1)  # runs saved before the option existed: never
                if period > 0 and (epoch + 1) % period == 0:  # snapshots along the way (YOLOv5's --save-period)
                    save_checkpoint(weights, self.last.with_name(f"epoch{epoch + 1}.pt"))
                del ckpt, weights
        return broadcast_object(stop)  # every rank stops together

    def checkpoint(self, epoch, finished, rngs):
        """Everything --resume needs, on the CPU and weights-only loadable. epoch -1: saved before the first epoch.
        rngs: every process's RNG state, so each DDP rank resumes its own dropout stream."""
        model = de_parallel(self.model)
        self.ema.update_attr(self.model, include=("names", "nc", "yaml"))
        hooks = {k: v for h in self.hooks for k, v in h.checkpoint().items()}
        return to_cpu(checkpoint_dict(model, names=model.names, ema=float_state_dict(self.ema.ema),
                                      updates=self.ema.updates, optimizer=self.optimizer.state_dict(),
                                      scheduler=self.scheduler.state_dict(), scaler=self.scaler.state_dict(),
                                      epoch=epoch, best_fitness=self.best_fitness, opt=plain_options(self.opt),
                                      warmup_from=self.warmup_from,
                                      hyp=self.hyp, results=self.rows, rng=rngs, finished=finished, **hooks))
