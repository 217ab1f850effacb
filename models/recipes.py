"""The pruning recipes as training hooks (models/trainer.py): distillation from a teacher, a sparsity penalty on the
channel groups' BatchNorm scales, and soft pruning (the doomed filters fade out of the unpruned model, then are cut,
in one stage or several re-ranked ones). A recipe is a list of these; the training loop knows none of them."""

from copy import deepcopy

import torch

from models.decay import ChannelFade
from models.graph import channel_groups
from models.plan import Plan
from models.prune import load_model, source_architecture
from models.rates import WIDTH_STEP
from models.sparsity import GroupLasso
from models.specs import make_divisible
from models.trainer import Hook
from models.yolo import ClassificationModel
from utils.distributed import broadcast_object, de_parallel, is_main_process
from utils.ema import ModelEMA
from utils.log import LOGGER, colorstr


class Distillation(Hook):
    """The step's loss is the distiller's (teacher logits, and features with --distill-features); its feature tap
    follows the student across a cut."""

    def __init__(self, distiller):
        self.loss = distiller

    def setup(self, trainer):
        self.loss.watch(trainer.model)

    def model_replaced(self, trainer):
        self.loss.watch(de_parallel(trainer.model))


class Sparsity(Hook):
    """--sparsity: a group-lasso penalty on every channel group's BatchNorm scales, on the model being trained."""

    def __init__(self, strength):
        self.strength = strength

    def setup(self, trainer):
        self.penalty = GroupLasso(trainer.model, self.strength)

    def model_replaced(self, trainer):
        self.penalty = GroupLasso(de_parallel(trainer.model), self.strength)


class Mixup(Hook):
    """--hyp mixup P: with probability P a batch is mixed with a shuffled copy of itself, x = λ·x + (1 − λ)·x[perm]
    and the labels as much (Zhang et al., ICLR 2018), λ ~ Beta(0.8, 0.8) (DeiT's). A teacher sees the same mixed
    images, so distillation matches its function between the training images too (Beyer et al., CVPR 2022). Drawn
    from torch's seeded generator: runs repeat and resume exactly."""

    ALPHA = 0.8

    def __init__(self, probability, nc):
        self.probability, self.nc = probability, nc
        self.beta = torch.distributions.Beta(torch.tensor(self.ALPHA), torch.tensor(self.ALPHA))

    def batch(self, images, labels):
        if float(torch.rand(())) >= self.probability:
            return images, labels
        lam = float(self.beta.sample())
        perm = torch.randperm(len(images)).to(images.device)
        onehot = torch.nn.functional.one_hot(labels, self.nc).float()
        return lam * images + (1 - lam) * images[perm], lam * onehot + (1 - lam) * onehot[perm]


# ------------------------------------------------------------------------------------------------ soft pruning
def fade_start(model, scores, source, steps=1):
    """(the source's own architecture with its weights, the first fade state towards `model`'s widths), or
    (model, None) when no filter of `source` is pruned (no scores)."""
    if scores is None:
        LOGGER.warning("WARNING ⚠️ --fade-epochs ignored: no filters are pruned from --weights here")
        return model, None
    full = load_model(source_architecture(model, getattr(source, "yaml", None)), source)
    return full, next_stage(full, model.yaml, scores, steps)


def next_stage(model, final_yaml, scores, steps):
    """The fade state of one of `steps` remaining stages from `model` (ranked by `scores`) towards `final_yaml`: 'yaml'
    the widths this stage cuts to (1/steps of the way, on the 8-grid; the final YAML at the last stage), 'scores',
    'final' and 'steps' left after it. Stage by stage the filters are re-ranked (--prune-steps, as HRank and
    Torch-Pruning's iterative_steps prune in steps)."""
    stage_yaml = final_yaml
    if steps > 1:
        final = Plan.of_yaml(final_yaml, nc=model.nc)
        stage = {g: min(c, max(final[g], make_divisible(final[g] + (c - final[g]) * (steps - 1) / steps, WIDTH_STEP)))
                 for g, c in Plan.of_model(model).items()}  # rounded up onto the grid: never past the final width
        stage_yaml = Plan(stage).yaml(final_yaml)
    return {"yaml": stage_yaml, "scores": scores, "final": final_yaml, "steps": steps - 1}


def stage_epochs(fade_epochs, prune_steps, fading):
    """(first, end) epoch of the fade stage `fading`: `fade_epochs` split evenly between `prune_steps` stages."""
    k = prune_steps - fading.get("steps", 0)  # 1-based stage number (a fade state without 'steps': one stage)
    return round(fade_epochs * (k - 1) / prune_steps), round(fade_epochs * k / prune_steps)


def fade_hooks(model, fading):
    """The ChannelFade hooked onto `model` for a fade state."""
    with torch.device("meta"):
        pruned = ClassificationModel(fading["yaml"], nc=model.nc)
    fade = ChannelFade(model, {g.name: g.channels for g in channel_groups(pruned)}, fading["scores"])
    return fade.attach(model).freeze(model)


def cut_faded(model, ema, fading, device, memory_format):
    """(model, ema) with the faded filters cut out (same outputs: they output zeros once the fade reached 0)."""
    def cut(m):
        pruned = ClassificationModel(fading["yaml"], nc=m.nc)
        pruned = load_model(pruned, m, fading["scores"]).to(device, memory_format=memory_format)
        pruned.names = m.names
        dropouts = [d for d in pruned.modules() if isinstance(d, torch.nn.Dropout)]
        for new_drop, old_drop in zip(dropouts, (d for d in m.modules() if isinstance(d, torch.nn.Dropout))):
            new_drop.p = old_drop.p  # --dropout holds after the cut
        return pruned

    new = cut(de_parallel(model))
    if ema is not None:
        ema = ModelEMA(cut(ema.ema), tau=ema.tau, updates=ema.updates)
    return new, ema


def carried_state(model, optimizer, fading, device):
    """The optimizer state of `model`'s parameters (Adam's moments, SGD's momentum), cut to the widths of
    `fading['yaml']` as the weights are: each per-element state is put in a copy of the model in place of its weights
    and that copy cut by `load_model` with the same scores. Returns {parameter name: state}."""
    model = de_parallel(model)
    named = dict(model.named_parameters())
    states = {name: optimizer.state.get(p, {}) for name, p in named.items()}
    keys = {k for name, st in states.items() for k, v in st.items()
            if torch.is_tensor(v) and v.shape == named[name].shape}
    carried = {name: {k: v.clone() if torch.is_tensor(v) else v for k, v in st.items() if k not in keys}
               for name, st in states.items()}  # e.g. Adam's step count
    for key in sorted(keys):
        proxy = deepcopy(model)
        with torch.no_grad():
            for name, p in proxy.named_parameters():
                p.copy_(states[name].get(key, torch.zeros_like(p)))
        cut = load_model(ClassificationModel(fading["yaml"], nc=model.nc), proxy, fading["scores"])
        for name, p in cut.named_parameters():
            if key in states[name]:
                carried[name][key] = p.detach().to(device)
    return carried


def rescored(model, score):
    """score(copy of `model` in eval mode) computed on rank 0 and sent to every rank."""
    result = score(deepcopy(de_parallel(model)).eval()) if is_main_process() else None
    return broadcast_object(result)


class Fade(Hook):
    """--fade-epochs: the doomed filters of `model` fade linearly to zero over the stage's epochs, then are cut; with
    --prune-steps the next stage's filters are ranked by `score(model)` on the model as trained by then. `carry`
    (--cut-optimizer carry): the new optimizer goes on with the kept weights' state instead of starting empty.

    Build it before the Trainer: the fade is hooked onto `model` now, and the weight average copies it from there."""

    def __init__(self, model, fading, fade_epochs, prune_steps=1, restart_lr=False, score=None, carry=False):
        self.fading, self.fade_epochs, self.prune_steps = fading, fade_epochs, prune_steps
        self.restart_lr, self.score, self.carry = restart_lr, score, carry
        self.fade = fade_hooks(model, fading)
        self.first = self.end = 0

    @property
    def settled(self):
        return self.fade is None

    def before_epoch(self, trainer, epoch):
        if self.fade is not None:
            self.first, self.end = stage_epochs(self.fade_epochs, self.prune_steps, self.fading)

    def before_batch(self, trainer, epoch, i, batches):
        if self.fade is not None:  # linear from 1 to 0 over the stage's steps: 0 at its last step
            self.fade.factor = max(0.0, 1.0 - ((epoch - self.first) * batches + i + 1) / ((self.end - self.first) * batches))

    def after_epoch(self, trainer, epoch):
        if self.fade is None or epoch + 1 != self.end:
            return
        model, ema = cut_faded(trainer.model, trainer.ema, self.fading, trainer.device, trainer.memory_format)
        carried = carried_state(trainer.model, trainer.optimizer, self.fading, trainer.device) if self.carry else None
        trainer.replace_model(model, ema, epoch, restart=self.restart_lr, state=carried)
        LOGGER.info(f"{colorstr('fade:')} faded filters cut: {sum(p.numel() for p in model.parameters()):,} parameters")
        if self.fading.get("steps"):  # the next stage, its filters ranked on the model as it is now
            self.fading = next_stage(model, self.fading["final"], rescored(model, self.score), self.fading["steps"])
            self.fade = fade_hooks(model, self.fading)
            if ema:
                self.fade.attach(ema.ema)
        else:
            self.fade = self.fading = None

    def checkpoint(self):
        return {"fade": self.fading}
