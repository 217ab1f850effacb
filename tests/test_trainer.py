"""The trainer with hooks (models/trainer.py): a recipe plugs in as a Hook without touching the loop."""

import copy

import pandas as pd
import torch

from classify import train
from models.trainer import Hook, Trainer
from models.yolo import ClassificationModel
from utils.dataloaders import create_classification_dataloader
from utils.hyp import load_hyp


def make_trainer(data, tmp_path, hooks, epochs=2, **options):
    opt = train.parse_opt(argv=["--epochs", str(epochs), "--imgsz", "32", "--seed", "0"])
    opt.save_dir = str(tmp_path / "run")
    for k, v in options.items():
        setattr(opt, k, v)
    (tmp_path / "run" / "weights").mkdir(parents=True)
    loader = create_classification_dataloader(data / "train", imgsz=32, batch_size=16, augment=False, workers=0)
    testloader = create_classification_dataloader(data / "val", imgsz=32, batch_size=32, augment=False, workers=0,
                                                  shuffle=False)
    torch.manual_seed(0)
    model = ClassificationModel("yolov5n-cls.yaml", nc=10)
    model.names = loader.dataset.classes
    return Trainer(opt, model, loader, testloader, load_hyp(""), torch.device("cpu"), hooks)


class Recorder(Hook):
    """Records every call the loop makes, in order."""

    def __init__(self):
        self.calls = []

    def setup(self, trainer):
        self.calls.append("setup")

    def before_epoch(self, trainer, epoch):
        self.calls.append(f"epoch {epoch}")

    def before_batch(self, trainer, epoch, i, batches):
        self.calls.append("batch")

    def after_epoch(self, trainer, epoch):
        self.calls.append(f"end {epoch}")

    def model_replaced(self, trainer):
        self.calls.append("replaced")

    def checkpoint(self):
        return {"recorded": len(self.calls)}


def test_hooks_are_called_in_order_and_their_state_is_saved(data, tmp_path):
    recorder = Recorder()
    trainer = make_trainer(data, tmp_path, [recorder])
    trainer.start()
    assert trainer.fit() == 2
    batches = len(trainer.trainloader)
    assert recorder.calls == ["setup", "epoch 0", *["batch"] * batches, "end 0",
                              "epoch 1", *["batch"] * batches, "end 1"]
    last = torch.load(trainer.last, weights_only=True)
    assert last["recorded"] == len(recorder.calls) and last["finished"]
    assert len(pd.read_csv(trainer.csv)) == 2 and trainer.best.exists()


class Penalty(Hook):
    """A regulariser as a hook: a heavy penalty on the head's weights shrinks them."""

    def setup(self, trainer):
        linear = trainer.model.model[-1].linear
        self.penalty = lambda: 1e3 * linear.weight.square().sum()


def test_a_penalty_hook_changes_what_is_learned(data, tmp_path):
    plain = make_trainer(data, tmp_path / "plain", [])
    penalised = make_trainer(data, tmp_path / "penalised", [Penalty()])
    for trainer in (plain, penalised):
        trainer.start()
        trainer.fit()
    norm = [t.model.model[-1].linear.weight.norm().item() for t in (plain, penalised)]
    assert norm[1] < 0.8 * norm[0]


class Swap(Hook):
    """Replaces the model at the end of the first epoch, as the fade's cut does."""

    settled = False

    def after_epoch(self, trainer, epoch):
        if epoch == 0:
            self.old = trainer.model
            trainer.replace_model(copy.deepcopy(trainer.model), trainer.ema, epoch)
            self.settled = True


def test_a_hook_may_replace_the_model_and_the_others_follow(data, tmp_path):
    swap, recorder = Swap(), Recorder()
    trainer = make_trainer(data, tmp_path, [swap, recorder])
    trainer.start()
    trainer.fit()
    assert recorder.calls.count("replaced") == 1 and recorder.calls.index("replaced") == recorder.calls.index("end 0") + 1
    optimized = {id(p) for group in trainer.optimizer.param_groups for p in group["params"]}
    assert trainer.model is not swap.old and optimized == {id(p) for p in trainer.model.parameters()}
    rows = pd.read_csv(trainer.csv)
    best = torch.load(trainer.best, weights_only=True)
    assert best["epoch"] == 1 and len(rows) == 2  # not settled in epoch 0: no best.pt from it


def test_save_period_keeps_snapshots_of_the_weight_average(data, tmp_path):
    trainer = make_trainer(data, tmp_path, [], epochs=3, save_period=2)
    trainer.start()
    trainer.fit()
    weights = tmp_path / "run" / "weights"
    assert sorted(p.name for p in weights.glob("epoch*.pt")) == ["epoch2.pt"]  # after the 2nd epoch only
    snapshot, last = (torch.load(weights / f, weights_only=True) for f in ("epoch2.pt", "last.pt"))
    assert snapshot["epoch"] == 1 and snapshot["optimizer"] is None  # weights only, like best.pt
    assert any(not torch.equal(v, last["ema"][k]) for k, v in snapshot["model"].items())  # not the final weights


def test_mixup_mixes_images_and_labels_alike():
    from models.recipes import Mixup

    images, labels = torch.rand(8, 3, 4, 4), torch.arange(8) % 5
    same = Mixup(0.0, nc=5).batch(images, labels)
    assert same[0] is images and same[1] is labels  # probability 0: untouched
    mixup = Mixup(1.0, nc=5)
    torch.manual_seed(0)
    mixed, soft = mixup.batch(images, labels)
    torch.manual_seed(0)  # the same draws: the gate, λ, the pairing
    torch.rand(())
    lam, perm = float(mixup.beta.sample()), torch.randperm(8)
    assert 0 < lam < 1 and not torch.equal(perm, torch.arange(8))
    onehot = torch.eye(5)[labels]
    torch.testing.assert_close(mixed, lam * images + (1 - lam) * images[perm])
    torch.testing.assert_close(soft, lam * onehot + (1 - lam) * onehot[perm])
    assert torch.allclose(soft.sum(1), torch.ones(8))
    from utils.distill import distillation_loss  # the distilled loss takes the mixed labels as they are

    assert torch.isfinite(distillation_loss(torch.randn(8, 5), torch.randn(8, 5), soft, label_smoothing=0.1))


def test_mixup_run_repeats_and_distils_on_the_mixed_images(data, tmp_path):
    """--hyp mixup 1: two runs with one seed give the same weights; training differs from a run without it."""
    hyp = tmp_path / "mix.yaml"
    hyp.write_text("mixup: 1.0\n")
    weights = []
    for name, h in (("a", hyp), ("b", hyp), ("plain", "")):
        result = train.run(data=str(data), cfg="yolov5n-cls.yaml", rate="0.5", imgsz=32, epochs=1, batch_size=16,
                           workers=0, device="cpu", seed=0, hyp=str(h), project=str(tmp_path), name=name)
        weights.append(torch.load(result["last"], weights_only=True)["model"])
    key = next(k for k in weights[0] if k.endswith("conv.weight"))
    torch.testing.assert_close(weights[0][key], weights[1][key], rtol=0, atol=0)
    assert not torch.equal(weights[0][key], weights[2][key])
