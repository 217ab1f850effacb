"""Filter-ranking criteria: a registry of small classes, one per criterion.

A criterion scores every channel of a set of *points* (modules whose output carries a channel group's
channels) and reduces the scores of a group's points to one score per channel; the highest are kept.
Adding a criterion is one class with `@register`. Criteria that need data see un-augmented training
batches in eval mode (BatchNorm running statistics, as the model is deployed).

Residual streams (a C3's `cv1` plus every added `m[i].cv2`): with `residual="members"` (default) a stream is
scored on its member convs' own outputs, before each add; with `residual="added"` on the maps that flow in
the stream after each add (HRankPlus' choice): `cv1`'s output and every residual Bottleneck's output.
Data-free criteria always score the member convs' weights.
"""

import torch
import torch.nn.functional as F

from utils.log import LOGGER, progress_bar

CRITERIA = {}  # name → Criterion subclass
DEFAULT_CRITERION = "bn"  # the best after fine-tuning on real data (benchmarks/criteria.py, README)
RESIDUAL_MODES = ("members", "added")


def register(cls):
    CRITERIA[cls.name] = cls
    return cls


def check_criterion(name):
    """A one-line ValueError for an unknown criterion (callers check before any costly work)."""
    if name not in CRITERIA:
        raise ValueError(f"--criterion must be one of {', '.join(CRITERIA)}, not '{name}'")
    return name


def get_criterion(name, **kwargs):
    return CRITERIA[check_criterion(name)](**kwargs)


class Criterion:
    """Base class: per-point scores (float64, one per output channel) and their per-group reduction."""

    name = ""
    help = ""
    needs_data = False  # scores feature maps of training images
    needs_grad = False  # also needs labels, a loss and a backward pass

    def point_scores(self, model, points, dataloader=None, batches=5, device=None):
        """{point name: (C,) float64 tensor} for the modules in `points` ({name: module})."""
        raise NotImplementedError

    def reduce(self, scores):
        """One score per channel from a group's point scores (a list of (C,) tensors): their mean."""
        return torch.stack(scores).mean(0)


# ------------------------------------------------------------------------------------------ weights only
@register
class L1(Criterion):
    name, help = "l1", "L1 norm of each filter's weights"

    def point_scores(self, model, points, dataloader=None, batches=5, device=None):
        return {n: m.conv.weight.detach().abs().sum((1, 2, 3)).double().cpu() for n, m in points.items()}


@register
class BatchNormScale(Criterion):
    name, help = "bn", "|BatchNorm gamma| of each filter"

    def point_scores(self, model, points, dataloader=None, batches=5, device=None):
        return {n: m.bn.weight.detach().abs().double().cpu() for n, m in points.items()}


@register
class GeometricMedian(Criterion):
    name, help = "fpgm", "summed distance of each filter to the others of its conv (FPGM): near the median = redundant"

    def point_scores(self, model, points, dataloader=None, batches=5, device=None):
        # He et al. 2019 prune the filters closest to the geometric median of their layer: those the others can stand
        # in for. Distance to every other filter, summed, orders filters the same way as their distance to it.
        scores = {}
        for n, m in points.items():
            w = m.conv.weight.detach().flatten(1).double().cpu()
            scores[n] = torch.cdist(w, w).sum(1)
        return scores


@register
class Random(Criterion):
    name, help = "random", "seeded random scores (a baseline for the others)"

    def __init__(self, seed=0):
        self.seed = seed

    def point_scores(self, model, points, dataloader=None, batches=5, device=None):
        gen = torch.Generator().manual_seed(self.seed)
        return {n: torch.rand(m.conv.out_channels, generator=gen, dtype=torch.float64) for n, m in points.items()}


# ------------------------------------------------------------------------------------------ feature maps
def singular_values(maps):
    """Singular values of every (H, W) map of an (N, C, H, W) tensor, in one batched call: (N, C, min(H, W))."""
    return torch.linalg.svdvals(maps.float())


def matrix_ranks(s, shape):
    """Matrix ranks from singular values `s` exactly as `torch.linalg.matrix_rank` counts them by default:
    singular values above max(H, W) * eps(float32) * the largest one."""
    tol = max(shape[-2:]) * torch.finfo(torch.float32).eps * s[..., :1]
    return (s > tol).sum(-1)


def average_rank(features):
    """HRank's criterion for one batch: per-channel matrix rank of (N, C, H, W) maps, summed over N."""
    return matrix_ranks(singular_values(features), features.shape).sum(0).double()


class MapCriterion(Criterion):
    """A criterion of the points' output maps: runs `batches` training batches through the model in eval mode and
    sums per-image statistics (`statistics` returns {key: (C,) tensor summed over the batch}); scores come from
    those sums and the number of images seen (`finish`)."""

    needs_data = True

    def statistics(self, maps, grads=None):
        raise NotImplementedError

    def finish(self, sums, seen):
        return {k: v / seen for k, v in sums.items()}

    def point_scores(self, model, points, dataloader=None, batches=5, device=None):
        if dataloader is None:
            raise ValueError(f"criterion '{self.name}' needs data: pass a dataloader of training images")
        sums = {n: {} for n in points}
        outputs = {}

        def add(name, stats):
            for k, v in stats.items():
                sums[name][k] = sums[name].get(k, 0) + v.double().cpu()

        def hook(name):
            def record(module, inputs, output):
                if self.needs_grad:
                    outputs[name] = output
                else:
                    add(name, self.statistics(output))
            return record

        handles = [m.register_forward_hook(hook(n)) for n, m in points.items()]
        device = device or next(model.parameters()).device
        was_training, seen = model.training, 0
        model.eval()
        try:
            total = min(batches, len(dataloader)) if hasattr(dataloader, "__len__") else batches
            for b, (images, labels) in enumerate(progress_bar(dataloader, total=total, desc=self.name, leave=False)):
                if b >= batches:
                    break
                images = images.to(device, non_blocking=True).float()
                if self.needs_grad:
                    self._backward(model, images, labels, outputs, add)
                else:
                    with torch.no_grad():
                        model(images)
                seen += images.shape[0]
        finally:
            for h in handles:
                h.remove()
            model.train(was_training)
        if not seen:
            raise ValueError(f"criterion '{self.name}' got no images from the dataloader")
        return {n: self.finish(s, seen) for n, s in sums.items()}

    def _backward(self, model, images, labels, outputs, add):
        outputs.clear()
        with torch.enable_grad():
            logits = model(images)
            if labels is None or not torch.is_tensor(labels) or labels.max() >= logits.shape[1]:
                if not getattr(self, "_warned", False):
                    LOGGER.info(f"{self.name}: labels do not match the model's {logits.shape[1]} classes; "
                                f"scoring against the model's own top-1 predictions")
                    self._warned = True
                labels = logits.argmax(1)
            loss = F.cross_entropy(logits, labels.to(logits.device), reduction="sum")  # per-image gradients
            names = list(outputs)
            grads = torch.autograd.grad(loss, [outputs[n] for n in names])  # activation gradients only
        for n, g in zip(names, grads):
            add(n, self.statistics(outputs[n].detach(), g))


@register
class HRank(MapCriterion):
    """HRank (Lin et al., CVPR 2020) with continuous tie-breaking.

    Primary score: the average matrix rank of the channel's post-activation maps. At small input sizes nearly
    every map is full rank (a 2x2 or 1x1 map can only have rank 0-2), so most filters tie. Ties are broken by the
    average nuclear norm (sum of singular values, computed in the same SVD) of the same maps, scaled to [0, 1]
    per point and added with a weight below half the smallest possible rank difference. So wherever the
    average ranks differ, the order is HRank's; where they are equal, the filter with the stronger response
    ranks higher.
    """

    name, help = "hrank", "average matrix rank of feature maps (HRank), ties broken by their nuclear norm"

    def statistics(self, maps, grads=None):
        s = singular_values(maps)
        return {"rank": matrix_ranks(s, maps.shape).sum(0), "nuclear": s.sum(-1).sum(0)}

    def finish(self, sums, seen):
        self.seen = seen
        nuclear = sums["nuclear"] / seen
        return torch.stack([sums["rank"] / seen, nuclear / nuclear.max().clamp_min(1e-12)], 1)  # (C, 2)

    def reduce(self, scores):
        """Mean rank over the group's points plus their mean tie-breaker times 1 / (2 * images * points): each
        point's rank sum is an integer, so two different mean ranks differ by at least 1 / (images * points)."""
        s = torch.stack(scores)  # (points, C, 2)
        rank, tie = s[..., 0].mean(0), s[..., 1].mean(0)
        return rank + tie / (2 * self.seen * len(scores))


@register
class Nuclear(MapCriterion):
    name, help = "nuclear", "average nuclear norm (sum of singular values) of feature maps: a continuous HRank"

    def statistics(self, maps, grads=None):
        return {"nuclear": singular_values(maps).sum(-1).sum(0)}

    def finish(self, sums, seen):
        return sums["nuclear"] / seen


@register
class Taylor(MapCriterion):
    """First-order Taylor estimate of the loss change when a channel is removed (Molchanov et al., 2017):
    |sum over the map of activation x gradient| per image, averaged over images. Needs labels; when the data's
    classes are not the model's, the model's own top-1 predictions stand in for them."""

    name, help = "taylor", "|activation x gradient| of feature maps (first-order Taylor, needs labels)"
    needs_grad = True

    def statistics(self, maps, grads=None):
        return {"taylor": (maps * grads).sum((2, 3)).abs().sum(0)}

    def finish(self, sums, seen):
        return sums["taylor"] / seen


# ------------------------------------------------------------------------------------------ groups
def scoring_points(groups, residual="members", needs_data=False):
    """{group name: [point names]}: the modules whose outputs (data criteria) or weights score each group (fixed
    groups, never pruned, are not scored). A point may carry more channels than the group (a split conv's output):
    the group's `span` of it counts."""
    if residual not in RESIDUAL_MODES:
        raise ValueError(f"residual must be one of {', '.join(RESIDUAL_MODES)}, not '{residual}'")
    groups = [g for g in groups if not g.fixed]
    if residual == "added" and needs_data:
        return {g.name: g.members[:1] + g.adds if g.adds else list(g.members) for g in groups}
    return {g.name: list(g.members) for g in groups}


def compute_scores(model, criterion=DEFAULT_CRITERION, dataloader=None, batches=5, device=None, seed=0,
                   residual="members"):
    """Per-channel scores for every channel group of a pretrained (pruned or not) model: {group: tensor}."""
    from models.prune import channel_groups

    crit = get_criterion(criterion, **({"seed": seed} if criterion == "random" else {}))
    groups = {g.name: g for g in channel_groups(model)}
    points = scoring_points(groups.values(), residual, crit.needs_data)
    modules = {n: model.get_submodule(n) for names in points.values() for n in names}
    per_point = crit.point_scores(model, modules, dataloader, batches, device)
    return {g: crit.reduce([per_point[n][groups[g].span(n)] for n in names]) for g, names in points.items()}


def recalibrate_bn(model, dataloader, batches=10):
    """Re-estimate BatchNorm running statistics on `batches` batches after pruning (torch's update_bn: a
    cumulative average, weights untouched). Removing filters changes what every later layer sees, so the
    source's statistics no longer fit. Returns the model in eval mode."""
    from itertools import islice

    from torch.optim.swa_utils import update_bn

    device = next(model.parameters()).device
    update_bn(((x.float(), y) for x, y in islice(dataloader, batches)), model, device=device)
    return model.eval()


__all__ = ["CRITERIA", "DEFAULT_CRITERION", "Criterion", "MapCriterion", "average_rank", "check_criterion",
           "compute_scores", "get_criterion", "recalibrate_bn", "register"]
