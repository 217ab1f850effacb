"""Classification metrics (top-1/top-5 accuracy) and early stopping on them."""

import torch

from utils.log import LOGGER


def top5_predictions(logits):
    """Indices of the (up to) 5 highest-scoring classes per row, best first: (N, min(5, nc))."""
    return logits.topk(min(5, logits.shape[1]), dim=1).indices


def accuracy_table(top5, targets):
    """(N, 2) floats: per-sample top-1 hit and top-5 hit, from top5_predictions and integer targets."""
    correct = (targets[:, None] == top5).float()
    return torch.stack((correct[:, 0], correct.max(1).values), dim=1)


class EarlyStopping:
    """Stop when fitness has not improved for `patience` epochs (0 or None: never)."""

    def __init__(self, patience=30):
        self.best_fitness = 0.0
        self.best_epoch = 0
        self.patience = patience or float("inf")

    def __call__(self, epoch, fitness):
        """Record this epoch's fitness; True means stop now."""
        if fitness >= self.best_fitness:  # >= so a plateau at the best value still counts as improving
            self.best_epoch, self.best_fitness = epoch, fitness
        stop = (epoch - self.best_epoch) >= self.patience
        if stop:
            LOGGER.info(f"Stopping training early as no improvement observed in the last {self.patience} epochs. "
                        f"Best results observed at epoch {self.best_epoch}; pass --patience 0 to disable.")
        return stop
