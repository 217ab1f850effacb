"""results.csv: one row per epoch with YOLOv5's classification columns.

The file is always rewritten whole (temp file + rename) from the rows kept in memory and in each
checkpoint, so a run that is killed and resumed lists every epoch exactly once.
"""

from pathlib import Path

from utils.atomic import write_text_atomic

RESULT_KEYS = ("train/loss", "val/loss", "metrics/accuracy_top1", "metrics/accuracy_top5", "lr/0")
COLUMNS = ("epoch",) + RESULT_KEYS


def results_row(epoch, train_loss, val_loss, top1, top5, lr):
    """A row as plain Python numbers (checkpoint-safe)."""
    return [int(epoch), float(train_loss), float(val_loss), float(top1), float(top5), float(lr)]


def write_results(path, rows):
    """Write the header and rows to path atomically."""
    path = Path(path)
    lines = [",".join(COLUMNS)]
    lines += [",".join([str(int(r[0]))] + [f"{v:.5g}" for v in r[1:]]) for r in rows]
    return write_text_atomic(path, "\n".join(lines) + "\n")
