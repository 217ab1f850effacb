"""Soft pruning (--fade-epochs): faded filters are cut without changing any output; training, best.pt and resume
around the cut."""

from pathlib import Path

import pandas as pd
import pytest
import torch

from classify import train, val
from models import recipes, trainer
from models.decay import ChannelFade
from models.graph import channel_groups
from models.prune import load_model
from models.yolo import ClassificationModel

from helpers import lively, make_checkpoint

COMMON = dict(cfg="yolov5n-cls.yaml", imgsz=32, batch_size=16, workers=0, device="cpu", seed=0)


def random_scores(model, seed=0):
    g = torch.Generator().manual_seed(seed)
    return {grp.name: torch.rand(grp.channels, generator=g) for grp in channel_groups(model)}


@pytest.mark.parametrize("cfg", ["yolov5n-cls.yaml", "yolo11n-cls.yaml"])  # C3 streams; C3k2 halves, C2PSA
def test_faded_to_zero_equals_the_cut_model(cfg):
    full = lively(ClassificationModel(cfg, nc=7)).eval()
    pruned = ClassificationModel(cfg, nc=7, rate=0.5)
    scores = random_scores(full)
    widths = {g.name: g.channels for g in channel_groups(pruned)}
    cut = load_model(pruned, full, scores).eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        before = full(x)
        fade = ChannelFade(full, widths, scores).attach(full)
        fade.factor = 1.0
        torch.testing.assert_close(full(x), before, rtol=0, atol=0)  # no fade yet: untouched
        fade.factor = 0.5
        assert not torch.allclose(full(x), before, atol=1e-3)
        fade.factor = 0.0
        torch.testing.assert_close(full(x), cut(x), rtol=1e-4, atol=1e-5)
        fade.remove()
        torch.testing.assert_close(full(x), before, rtol=0, atol=0)


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    return make_checkpoint(tmp_path_factory.mktemp("src") / "src.pt", nc=10)


@pytest.mark.slow
def test_fade_then_cut_trains_the_pruned_model(data, source, tmp_path):
    """3 epochs, the first 2 fading: the run ends pruned; best.pt is never the full-width model; the logged accuracy
    of the fade's last epoch (factor 0, full width) is what the cut model scores."""
    result = train.run(data=str(data), weights=str(source), rate="0.5", epochs=3, fade_epochs=2,
                       project=str(tmp_path), name="fade", **COMMON)
    expected = sum(p.numel() for p in ClassificationModel("yolov5n-cls.yaml", nc=10, rate=0.5).parameters())
    last = torch.load(result["last"], weights_only=True)
    assert last["yaml"]["rate"] == [0.5] * 10 or last["yaml"]["rate"] == 0.5
    assert last["fade"] is None and result["parameters"] == expected
    best = torch.load(result["best"], weights_only=True)
    assert best["epoch"] >= 1  # the cut happens at the end of epoch index 1: no full-width best.pt before it
    assert sum(v.numel() for k, v in best["model"].items() if not k.endswith(("running_mean", "running_var",
                                                                               "num_batches_tracked"))) == expected


@pytest.mark.slow
def test_a_fade_to_the_last_epoch_scores_the_cut_model_exactly(data, source, tmp_path):
    result = train.run(data=str(data), weights=str(source), rate="0.5", epochs=2, fade_epochs=2,
                       project=str(tmp_path), name="all", **COMMON)
    logged = pd.read_csv(Path(result["save_dir"]) / "results.csv")["metrics/accuracy_top1"].iloc[-1]
    top1 = val.run(data=str(data), weights=result["best"], batch_size=32, imgsz=32, device="cpu", workers=0,
                   project=tmp_path, name="val")[0]
    assert top1 == pytest.approx(logged, abs=1e-4)


class Killed(Exception):
    pass


@pytest.mark.slow
@pytest.mark.parametrize("extra,kill_epoch", [(dict(epochs=3, fade_epochs=2), 0),  # mid-fade: full width
                                              (dict(epochs=5, fade_epochs=4, prune_steps=2), 2),  # second stage
                                              (dict(epochs=2, fade_epochs=1, warmup_epochs=1.0), 0)])  # warms up next
def test_resume_inside_the_fade_gives_the_same_weights(data, source, tmp_path, monkeypatch, extra, kill_epoch):
    options = dict(data=str(data), weights=str(source), rate="0.5", **extra, **COMMON)
    straight = train.run(project=str(tmp_path), name="straight", **options)
    real_save = trainer.save_checkpoint

    def save_then_die(ckpt, path):
        real_save(ckpt, path)
        if Path(path).name == "last.pt" and ckpt["epoch"] == kill_epoch:
            assert (ckpt["fade"] is not None) == (kill_epoch + 1 < extra["fade_epochs"])  # the fade state is saved
            if extra.get("prune_steps"):  # the last stage, from the intermediate widths
                assert ckpt["fade"]["steps"] == 0 and "widths" in ckpt["yaml"]
            raise Killed

    monkeypatch.setattr(trainer, "save_checkpoint", save_then_die)
    with pytest.raises(Killed):
        train.run(project=str(tmp_path), name="part", **options)
    monkeypatch.setattr(trainer, "save_checkpoint", real_save)
    last = tmp_path / "part" / "weights" / "last.pt"
    train.run(resume=str(last), device="cpu", workers=0)
    a, b = (torch.load(p, weights_only=True) for p in (straight["last"], last))
    for key in ("model", "ema"):
        for k, v in a[key].items():
            torch.testing.assert_close(b[key][k], v, rtol=0, atol=0, msg=f"{key}.{k}")


def test_fade_epochs_out_of_range_is_one_line(data, source, tmp_path):
    with pytest.raises(ValueError, match="--fade-epochs must be between 0 and --epochs"):
        train.run(data=str(data), weights=str(source), rate="0.5", epochs=2, fade_epochs=3, project=str(tmp_path),
                  **COMMON)


def test_doomed_filters_and_their_readers_get_no_gradient():
    model = lively(ClassificationModel("yolov5n-cls.yaml", nc=7))
    scores = random_scores(model)
    widths = {g.name: g.channels for g in channel_groups(ClassificationModel("yolov5n-cls.yaml", nc=7, rate=0.5))}
    fade = ChannelFade(model, widths, scores).attach(model).freeze(model)
    fade.factor = 0.5
    model(torch.randn(2, 3, 32, 32)).sum().backward()
    doomed_out = fade.removed["model.1"]  # model.1 reads model.0's channels and writes its own
    doomed_in = fade.read["model.1"]
    grad = model.model[1].conv.weight.grad.abs().sum((2, 3))
    assert grad[doomed_out].eq(0).all() and grad[:, doomed_in].eq(0).all()
    assert grad[~doomed_out][:, ~doomed_in].gt(0).all()  # the kept filters still learn
    assert model.model[1].bn.weight.grad[doomed_out].eq(0).all() and model.model[1].bn.weight.grad[~doomed_out].ne(0).all()
    linear = model.model[-1].linear.weight.grad
    assert linear[:, fade.read["model.9.linear"]].eq(0).all() and linear[:, ~fade.read["model.9.linear"]].ne(0).any()


@pytest.mark.slow
def test_prune_steps_cut_halfway_then_to_the_plan(data, source, tmp_path, monkeypatch):
    """--prune-steps 2: the first stage cuts each group half way (on the 8-grid), the filters of the second stage are
    re-ranked on the model as trained by then, and the run ends at the plan's widths."""
    cuts, real_cut = [], recipes.cut_faded

    def spy(model, ema, fading, *args):
        cuts.append({g.name: g.channels for g in channel_groups(ClassificationModel(fading["yaml"], nc=10))})
        return real_cut(model, ema, fading, *args)

    monkeypatch.setattr(recipes, "cut_faded", spy)
    result = train.run(data=str(data), weights=str(source), rate="0.5", epochs=3, fade_epochs=2, prune_steps=2,
                       project=str(tmp_path), name="steps", **COMMON)
    full = {g.name: g.channels for g in channel_groups(ClassificationModel("yolov5n-cls.yaml", nc=10))}
    final = {g.name: g.channels for g in channel_groups(ClassificationModel("yolov5n-cls.yaml", nc=10, rate=0.5))}
    assert len(cuts) == 2 and cuts[1] == final
    for g, c in cuts[0].items():  # half way, rounded up to a multiple of 8
        assert final[g] <= c <= full[g] and c % 8 == 0 and abs(c - (full[g] + final[g]) / 2) < 8
    assert any(cuts[0][g] not in (full[g], final[g]) for g in full)
    last = torch.load(result["last"], weights_only=True)
    assert last["fade"] is None
    assert result["parameters"] == sum(p.numel() for p in ClassificationModel("yolov5n-cls.yaml", nc=10,
                                                                              rate=0.5).parameters())
    rows = pd.read_csv(Path(result["save_dir"]) / "results.csv")
    assert len(rows) == 3


@pytest.mark.parametrize("steps", [0, 3])
def test_prune_steps_out_of_range_is_one_line(data, source, tmp_path, steps):
    with pytest.raises(ValueError, match="--prune-steps must be at least 1 and at most --fade-epochs"):
        train.run(data=str(data), weights=str(source), rate="0.5", epochs=3, fade_epochs=2, prune_steps=steps,
                  project=str(tmp_path), **COMMON)


@pytest.mark.slow
def test_restart_lr_starts_the_schedule_over_after_the_cut(data, source, tmp_path):
    options = dict(data=str(data), weights=str(source), rate="0.5", epochs=5, fade_epochs=2, cos_lr=True,
                   project=str(tmp_path), **COMMON)
    lrs = {}
    for restart in (False, True):
        result = train.run(name=f"restart{restart}", restart_lr=restart, **options)
        lrs[restart] = pd.read_csv(Path(result["save_dir"]) / "results.csv")["lr/0"].tolist()
    plain, restarted = lrs[False], lrs[True]
    assert plain == sorted(plain, reverse=True)  # one cosine over the 5 epochs
    assert restarted[:2] == plain[:2] and restarted[2] > plain[1]  # back up after the cut at the end of epoch 2
    assert restarted[2:] == sorted(restarted[2:], reverse=True) and restarted[2] > 0.9 * 0.001


@pytest.mark.parametrize("cfg", ["yolov5n-cls.yaml", "yolo11n-cls.yaml"])
@pytest.mark.parametrize("name", ["Adam", "SGD"])
def test_cut_optimizer_carry_cuts_the_state_as_the_weights(cfg, name):
    """--cut-optimizer carry: a state equal to the weights, cut, equals the cut model's weights (so every moment
    follows its weight); scalar entries (Adam's step) are kept, and the new optimizer steps with that state."""
    from utils.optim import smart_optimizer

    full = lively(ClassificationModel(cfg, nc=7))
    scores = random_scores(full)
    full(torch.randn(2, 3, 32, 32)).sum().backward()
    optimizer = smart_optimizer(full, name, lr=0.01)
    optimizer.step()
    key = "exp_avg" if name == "Adam" else "momentum_buffer"
    for p in full.parameters():
        optimizer.state[p][key] = p.detach().clone()
    fading = {"yaml": ClassificationModel(cfg, nc=7, rate=0.5).yaml, "scores": scores}
    carried = recipes.carried_state(full, optimizer, fading, torch.device("cpu"))
    cut = load_model(ClassificationModel(cfg, nc=7, rate=0.5), full, scores)
    new = smart_optimizer(cut, name, lr=0.01)
    for n, p in cut.named_parameters():  # as Trainer.replace_model gives it
        new.state[p] = carried[n]
    for n, p in cut.named_parameters():
        state = new.state[p]
        torch.testing.assert_close(state[key], p.detach(), rtol=0, atol=0)
        if name == "Adam":
            assert state["exp_avg_sq"].shape == p.shape and float(state["step"]) == 1.0
    cut(torch.randn(2, 3, 32, 32)).sum().backward()
    new.step()  # the carried state has the new shapes


@pytest.mark.slow
def test_cut_optimizer_and_warmup_at_the_cut(data, source, tmp_path, monkeypatch):
    """--warmup-epochs 1 with a fade over 1 of 3 epochs: the first epoch's steps rise linearly to lr0 and the
    schedule goes on unchanged; at the cut a new optimizer warms up again and counts its steps from there, a carried
    one does neither (Adam's step count in last.pt covers the whole run)."""
    lrs, real_step = [], trainer.train_step

    def recording_step(model, images, labels, criterion, optimizer, *args, **kwargs):
        lrs.append(optimizer.param_groups[0]["lr"])
        return real_step(model, images, labels, criterion, optimizer, *args, **kwargs)

    monkeypatch.setattr(trainer, "train_step", recording_step)
    options = dict(data=str(data), weights=str(source), rate="0.5", epochs=3, fade_epochs=1, warmup_epochs=1,
                   project=str(tmp_path), **COMMON)
    for mode in ("new", "carry"):
        lrs.clear()
        result = train.run(name=mode, cut_optimizer=mode, **options)
        nb = len(lrs) // 3
        scheduled = pd.read_csv(Path(result["save_dir"]) / "results.csv")["lr/0"].tolist()
        assert scheduled == pytest.approx([0.001, 0.001 * (1 - 0.99 / 3), 0.001 * (1 - 2 * 0.99 / 3)])  # as without
        assert lrs[:nb] == pytest.approx([0.001 * (k + 1) / nb for k in range(nb)])
        after_cut = [scheduled[1] * (k + 1) / nb for k in range(nb)] if mode == "new" else [scheduled[1]] * nb
        assert lrs[nb:2 * nb] == pytest.approx(after_cut) and lrs[2 * nb:] == pytest.approx([scheduled[2]] * nb)
        last = torch.load(result["last"], weights_only=True)
        assert last["warmup_from"] == (nb if mode == "new" else 0)
        assert {float(s["step"]) for s in last["optimizer"]["state"].values()} == {(2 if mode == "new" else 3) * nb}


def test_the_cut_keeps_dropout():
    """--dropout set on the full model holds for the cut model that trains on."""
    full = ClassificationModel("yolov5n-cls.yaml", nc=7)
    for m in full.modules():
        if isinstance(m, torch.nn.Dropout):
            m.p = 0.3
    fading = {"yaml": ClassificationModel("yolov5n-cls.yaml", nc=7, rate=0.5).yaml, "scores": random_scores(full)}
    full.names = list(range(7))
    cut, _ = recipes.cut_faded(full, None, fading, torch.device("cpu"), torch.contiguous_format)
    drops = [m.p for m in cut.modules() if isinstance(m, torch.nn.Dropout)]
    assert drops == [0.3]
