"""A width plan: the kept width of every prunable channel group of an architecture, on the width grid
(models/rates.py `on_grid`).

Every way a command says how wide the pruned model is resolves to a Plan: a compress rate (`Plan.of_yaml(cfg, rate)`,
`Plan.uniform`), a YAML's own `rate:`/`widths:` (`Plan.of_yaml(cfg)`), a budget allocated by measurement
(models/budget.py `plan_for_target`), the widths of a built model (`Plan.of_model`). A plan is pruned when a group is
narrower than the architecture's full width (`narrower_than`). A model YAML carries it (`yaml`, `save`), so a
checkpoint stays weights only and rebuilds from its YAML alone.
"""

import yaml

from models.costs import meta_model
from models.graph import channel_groups
from models.rates import kept_width
from models.yolo import load_yaml
from utils.atomic import write_text_atomic


class Plan(dict):
    """{channel group name: kept width} over the groups a plan may narrow (not the fixed ones, such as the classes)."""

    @classmethod
    def of_model(cls, model):
        return cls({g.name: g.channels for g in channel_groups(model) if not g.fixed})

    @classmethod
    def of_yaml(cls, cfg, rate=None, nc=None):
        """The plan a model YAML (path, name or dict) builds: its own rate:/widths:, or `rate` (the --rate rule)."""
        return cls.of_model(meta_model(cfg, nc=nc, rate=rate))

    @classmethod
    def full(cls, cfg, nc=None):
        """The unpruned widths of cfg's architecture (its own rate and widths ignored)."""
        return cls.of_yaml(cfg, rate=0.0, nc=nc)

    @classmethod
    def uniform(cls, full, rate):
        """One rate for every group of the full widths `full` (the --rate rule, without building the model)."""
        return cls({g: kept_width(c, rate) for g, c in full.items()})

    def narrower_than(self, full):
        """True when some group keeps fewer channels than in `full` (the unpruned plan): the model is pruned."""
        return any(w < full[g] for g, w in self.items() if g in full)

    def yaml(self, cfg):
        """cfg's model YAML dict with this plan as its `widths:` (its own rate and widths replaced)."""
        base = {k: v for k, v in load_yaml(cfg).items() if k not in ("rate", "widths")}
        return {**base, "rate": 0.0, "widths": {g: int(w) for g, w in self.items()}}  # plain: YAML, weights-only

    def save(self, path, cfg):
        """Write the plan as cfg's model YAML to `path` (classify/train.py --cfg rebuilds it); returns that YAML."""
        planned = self.yaml(cfg)
        write_text_atomic(path, yaml.safe_dump(planned, sort_keys=False))
        return planned
