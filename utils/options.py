"""The command-line options several commands share, each declared once: one spelling (with YOLOv5's aliases), one
type, one default and one help text, so that `--imgsz` or `--device` cannot drift apart between commands.

A command adds them with the add_* functions below. Their parameters are the only things a command may set itself,
and only where the option honestly means something different there (PER_COMMAND says which and why).
tests/test_options.py builds every command's parser and fails when a flag several of them take is declared
differently in one (beyond PER_COMMAND), unless COMMAND_SPECIFIC says it is a different option spelled alike.
"""

import os

from utils.cli import DEFAULT_IMGSZ
from utils.datasets import DEFAULT_DATA
from utils.distill import DISTILL_ALPHA, DISTILL_T
from utils.hyp import DEFAULT_HYP
from utils.paths import ROOT

DEFAULT_WEIGHTS = "yolov5s-cls.pt"  # YOLOv5's classifier, downloaded on first use
TRAINED_SIZE = f"the model's training size, else {DEFAULT_IMGSZ}"  # what --imgsz None means to commands reading a model
WORKERS_HELP = f"max dataloader workers (capped at the CPU cores: {os.cpu_count()} here)"
DEFAULT_WORKERS = 8  # YOLOv5's
TRAIN_BATCH = 64  # total over all training processes, as YOLOv5's classify/train.py

# --batch-size: (default, help) per command. A batch is a different thing in each, so is its best size.
BATCH_SIZES = {
    "train": (TRAIN_BATCH, "total batch size for all processes"),
    "prune": (TRAIN_BATCH, "total batch size"),
    # BatchNorm is re-estimated on training batches: of the size it was trained on
    "sensitivity": (TRAIN_BATCH, "images per batch (BatchNorm is re-estimated on training batches of this size)"),
    "val": (128, "images per batch"),  # YOLOv5's val: no gradients are kept, so twice the training batch fits
    # ranking scores a few batches (--batches), not a whole epoch; hrank takes an SVD of every map of every image
    "rank": (16, "images per batch"),
    "export": (1, "batch size of the exported model's input (fixed unless --dynamic)"),  # as YOLOv5's export
}

# Shared options whose declaration a command may adapt: flag → (fields it may set, why). All others are identical.
PER_COMMAND = {
    "--weights": ({"default", "help", "nargs"}, "'' in the training commands (train a model first); several files "
                                                "in predict and export, as YOLOv5's"),
    "--data": ({"default", "help"}, "none where no data is needed (predict: None, unused; export: '', for --int8)"),
    "--cfg": ({"help"}, "without it: the --weights architecture, else each command's own (rank has none)"),
    "--imgsz": ({"help", "nargs"}, "what None resolves to: the model's size, prune's demo size, train's 224; "
                                   "h w in predict and export, as YOLOv5's"),
    "--batch-size": ({"default", "help"}, "a batch is a different thing in each command: see BATCH_SIZES"),
    "--device": ({"default"}, "export traces on the CPU unless told otherwise, as YOLOv5's"),
    "--workers": ({"default", "help"}, "prune's default fits its 2-core demo; train's count is per process"),
    "--project": ({"default"}, "each command's own runs/ folder"),
    "--half": ({"help"}, "export also writes float16 ultralytics weights with it"),
    "--criterion": ({"help"}, "rank.py's help lists the criteria; the others point to it"),
    "--cache": ({"default", "help"}, "prune caches in RAM by default (its data is read by several trainings)"),
    "--target-flops": ({"help"}, "instead of --rate (train, prune), or besides the scores (rank)"),
    "--sensitivity": ({"help"}, "what the allocation falls back to"),
}

# Flags spelled alike in several commands that are not one option: prune's orchestrate a whole pipeline.
COMMAND_SPECIFIC = {
    "--epochs": "prune: the baseline's epochs (the fine-tune has --finetune-epochs); train: the run's",
    "--rate": "prune: default DEFAULT_RATE; train: none (no pruning)",
    "--teacher": "prune: default the baseline it trains or reads; train: none",
    "--fade-epochs": "prune: default a share of --finetune-epochs; train: 0",
    "--nosave": "predict: no annotated images; train: only the final checkpoint",
    "--verbose": "val: the per-class table (on by default); train: the per-layer table of the pruned model",
}


def add_weights(parser, help, default=DEFAULT_WEIGHTS, several=False):
    """--weights (alias --model, as YOLOv5's classify/train.py spells it); several=True takes a list."""
    parser.add_argument("--weights", "--model", type=str, default=default, help=help,
                        **({"nargs": "+"} if several else {}))


def add_cfg(parser, help):
    parser.add_argument("--cfg", type=str, default="", help=help)


def add_data(parser, help="dataset name or ImageFolder root", default=DEFAULT_DATA):
    parser.add_argument("--data", type=str, default=default, help=help)


def add_imgsz(parser, when_omitted=TRAINED_SIZE, what="image size (pixels)", hw=False):
    """--imgsz/--img/--img-size, default None: each command resolves it (when_omitted says to what). hw=True takes
    YOLOv5's `h w` (one or two numbers) as predict and export do."""
    parser.add_argument("--imgsz", "--img", "--img-size", type=int, default=None,
                        help=f"{what}{', or h w' if hw else ''}; default: {when_omitted}",
                        **({"nargs": "+"} if hw else {}))


def add_batch_size(parser, command):
    default, help = BATCH_SIZES[command]
    parser.add_argument("--batch-size", type=int, default=default, help=help)


def add_device(parser, default=""):
    parser.add_argument("--device", default=default, help="cuda device, i.e. 0 or 0,1,2,3 or cpu")


def add_workers(parser, default=DEFAULT_WORKERS, per_process=False):
    parser.add_argument("--workers", type=int, default=default,
                        help=WORKERS_HELP + (" per process" if per_process else ""))


def add_run_folder(parser, project):
    """--project/--name/--exist-ok: results go to <project>/<name>, or a new <name>2, <name>3, ... unless --exist-ok."""
    parser.add_argument("--project", default=ROOT / project, help="save to project/name")
    parser.add_argument("--name", default="exp", help="save to project/name")
    parser.add_argument("--exist-ok", action="store_true", help="existing project/name ok, do not increment")


def add_seed(parser):
    parser.add_argument("--seed", type=int, default=0,
                        help="random seed (data order, augmentation, the random criterion)")


def add_half(parser, help="use FP16 half-precision inference (CUDA only)"):
    parser.add_argument("--half", action="store_true", help=help)


def add_dnn(parser):
    parser.add_argument("--dnn", action="store_true",
                        help="OpenCV DNN for ONNX files: accepted for YOLOv5 compatibility, no effect")


def add_criterion(parser, criteria, default, help="filter ranking criterion (see classify/rank.py --help)"):
    """--criterion; criteria (models/criteria.py's registry) and its default are passed in: utils/ never imports
    models/."""
    parser.add_argument("--criterion", type=str, default=default, choices=criteria, help=help)


def add_rank_batches(parser):
    parser.add_argument("--rank-batches", type=int, default=5, help="training batches scored by data criteria")


def add_ranks(parser):
    parser.add_argument("--ranks", type=str, default="", help="scores file from classify/rank.py (skips ranking)")


def add_cache(parser, default=None):
    help = "cache decoded images in 'ram' (--cache alone) or on 'disk' (as <image>.npy)"
    parser.add_argument("--cache", type=str, nargs="?", const="ram", default=default, choices=("ram", "disk"),
                        help=help + ("; None = no cache" if default is None else ""))


def add_hyp(parser):
    parser.add_argument("--hyp", type=str, default="",
                        help="YAML of augmentation and loss settings (scale, fliplr, flipud, jitter, "
                             f"label_smoothing); missing keys and '' take {DEFAULT_HYP.relative_to(ROOT)}")


def add_distillation(parser):
    """--distill-alpha and --distill-t: how a student learns from --teacher."""
    parser.add_argument("--distill-alpha", type=float, default=DISTILL_ALPHA,
                        help="weight a of the teacher term in (1-a)*CE + a*T^2*KL (default %(default)s, measured on "
                             "digits: README 'Recovering accuracy')")
    parser.add_argument("--distill-t", type=float, default=DISTILL_T,
                        help="distillation temperature T (default %(default)s, measured with --distill-alpha)")


def add_plan(parser):
    parser.add_argument("--plan", type=str, default="", choices=("", "ultralytics"),
                        help="'ultralytics': prune only widths ultralytics' YAML can say (Classify's 1280 and PSA "
                             "feed-forwards kept), so YOLO(exported file).train() keeps the pruned model")


def add_target_options(parser, flops_help, sensitivity_help):
    """--target-flops/--target-params/--target-latency and --sensitivity: a budget instead of --rate
    (models/budget.py)."""
    parser.add_argument("--target-flops", type=float, default=None, help=flops_help)
    parser.add_argument("--target-params", type=float, default=None, help="... of the unpruned parameters")
    parser.add_argument("--target-latency", type=float, default=None,
                        help="... of the unpruned latency on --latency-runtime at --imgsz (measured)")
    parser.add_argument("--latency-runtime", default=None, choices=("onnxruntime", "torch"),
                        help="where --target-latency is measured: ONNX Runtime on the CPU (default when installed) or "
                             "PyTorch on --device")
    parser.add_argument("--latency-batch", type=int, default=1, help="batch size --target-latency is measured at")
    parser.add_argument("--sensitivity", type=str, default="", help=sensitivity_help)
