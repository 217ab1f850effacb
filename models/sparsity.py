"""Sparsity training (Network Slimming, Liu et al. ICCV 2017): a penalty that drives whole channels' BatchNorm scales
to zero, so that the filters pruning later removes carry little before they are removed.

A channel group (models/graph.py) is what pruning keeps or removes as one: every member conv's BatchNorm scale of a
channel, e.g. all convs added into one C3 residual stream. The penalty is the group lasso over them,
strength * sum over groups and channels of sqrt(sum over members of gamma^2): the L1 norm of Network Slimming when a
group has one member, and for tied members it shrinks a channel only as a whole (Torch-Pruning's group
regularisers do the same). The `bn` criterion then ranks by what the penalty left.
"""


from models.graph import channel_groups

EPS = 1e-12  # keeps the gradient of the root finite where a channel's scales are all zero


def check_sparsity(strength):
    if not strength >= 0:
        raise ValueError(f"--sparsity must be 0 or more, not {strength}")


class GroupLasso:
    """strength * group lasso of the prunable channel groups' BatchNorm scales of `model` (callable: the penalty)."""

    def __init__(self, model, strength):
        check_sparsity(strength)
        self.strength = strength
        modules = dict(model.named_modules())
        self.groups = [[(modules[m].bn.weight, g.span(m)) for m in g.members] for g in channel_groups(model)
                       if not g.fixed]

    def __call__(self):
        total = 0.0
        for members in self.groups:
            squares = sum(w[span].float().pow(2) for w, span in members)
            total = total + (squares + EPS).sqrt().sum()
        return self.strength * total
