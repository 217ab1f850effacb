"""utils/distill.py and classify/train.py --teacher: the loss by hand, a frozen teacher, resume, one-line errors."""

import math

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import classify.train as train
import models.trainer as trainer
from models.yolo import ClassificationModel
from utils.cli import run_cli
from utils.distill import Distiller, FeatureTap, distillation_loss, output_classes, similarity_loss

from helpers import make_checkpoint

COMMON = dict(cfg="yolov5n-cls.yaml", imgsz=32, batch_size=16, workers=0, device="cpu", seed=0)


def test_loss_equals_hand_computation():
    s = torch.tensor([[1.0, 2.0, 0.5]])
    t = torch.tensor([[3.0, 0.0, 1.0]])
    y = torch.tensor([1])
    alpha, temp = 0.3, 2.0

    def softmax(v):
        e = [math.exp(x) for x in v]
        return [x / sum(e) for x in e]

    ps, pt = softmax([x / temp for x in s[0].tolist()]), softmax([x / temp for x in t[0].tolist()])
    kl = sum(q * math.log(q / p) for p, q in zip(ps, pt))  # KL(teacher || student)
    ce = -math.log(softmax(s[0].tolist())[1])
    expected = (1 - alpha) * ce + alpha * temp ** 2 * kl
    assert distillation_loss(s, t, y, alpha, temp).item() == pytest.approx(expected, rel=1e-6)


def test_loss_is_cross_entropy_at_alpha_0_and_kl_at_alpha_1():
    g = torch.Generator().manual_seed(0)
    s, t = torch.randn(8, 5, generator=g), torch.randn(8, 5, generator=g)
    y = torch.randint(0, 5, (8,), generator=g)
    ce = F.cross_entropy(s, y, label_smoothing=0.1)
    assert torch.equal(distillation_loss(s, t, y, alpha=0, temperature=4, label_smoothing=0.1), ce)
    assert distillation_loss(s, s, y, alpha=1, temperature=4).item() == pytest.approx(0, abs=1e-6)  # same outputs
    assert distillation_loss(s.half(), t.half(), y).dtype == torch.float32  # AMP logits: loss in float32


def test_teacher_gets_no_gradient_and_stays_in_eval_mode():
    torch.manual_seed(0)
    student, teacher = (ClassificationModel("yolov5n-cls.yaml", nc=4) for _ in range(2))
    before = {k: v.clone() for k, v in teacher.state_dict().items()}
    teacher.train()  # Distiller must put it in eval mode, and keep it there
    distiller = Distiller(teacher, alpha=0.5, temperature=4)
    optimizer = torch.optim.SGD(student.parameters(), lr=0.1)
    scaler = torch.amp.GradScaler("cuda", enabled=False)
    images, labels = torch.randn(4, 3, 32, 32), torch.tensor([0, 1, 2, 3])
    student.train()
    trainer.train_step(student, images, labels, nn.CrossEntropyLoss(), optimizer, scaler, distiller=distiller)
    assert not teacher.training and not any(m.training for m in teacher.modules())
    assert all(p.grad is None and not p.requires_grad for p in teacher.parameters())
    for k, v in teacher.state_dict().items():  # BN running statistics untouched too
        torch.testing.assert_close(v, before[k], rtol=0, atol=0, msg=k)
    assert any(p.grad is None for p in student.parameters())  # zero_grad(set_to_none) after the step
    assert output_classes(teacher) == 4


def test_bad_alpha_or_temperature():
    with pytest.raises(ValueError, match="--distill-alpha"):
        Distiller(nn.Identity(), alpha=1.5)
    with pytest.raises(ValueError, match="--distill-t"):
        Distiller(nn.Identity(), temperature=0)
    with pytest.raises(ValueError, match="--distill-features"):
        Distiller(nn.Identity(), features=-1)


def test_similarity_loss_compares_batches_not_widths():
    g = torch.Generator().manual_seed(0)
    teacher = torch.rand(8, 32, generator=g)
    assert similarity_loss(teacher, teacher).item() == pytest.approx(0, abs=1e-7)
    assert similarity_loss(3 * teacher, teacher).item() == pytest.approx(0, abs=1e-7)  # scale-free
    mixed = teacher @ torch.linalg.qr(torch.randn(32, 32, generator=g))[0]  # rotated: same Gram matrix, same loss
    assert similarity_loss(mixed, teacher).item() == pytest.approx(0, abs=1e-6)
    narrow = torch.rand(8, 12, generator=g)  # a pruned student: fewer channels, still comparable
    assert similarity_loss(narrow, teacher).item() > 1e-4
    # by hand for a batch of two: Gram rows normalised, squared differences over b^2
    s, t = torch.tensor([[1.0, 0.0], [1.0, 1.0]]), torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    gs = torch.tensor([[1.0, 1.0], [1.0, 2.0]])
    gs = gs / gs.norm(dim=1, keepdim=True)
    expected = ((gs - torch.eye(2)) ** 2).sum() / 4
    assert similarity_loss(s, t).item() == pytest.approx(expected.item(), rel=1e-6)


def test_feature_distillation_adds_the_similarity_term():
    torch.manual_seed(0)
    student = ClassificationModel("yolov5n-cls.yaml", nc=4, rate=0.5)
    teacher = ClassificationModel("yolov5n-cls.yaml", nc=4)
    images, labels = torch.randn(4, 3, 32, 32), torch.tensor([0, 1, 2, 3])
    distiller = Distiller(teacher, alpha=0.5, temperature=4, features=100.0)
    student.train()
    with pytest.raises(RuntimeError, match="watch"):
        distiller(student(images), images, labels)
    distiller.watch(student)
    logits = student(images)
    features = distiller.student_tap.features
    assert features.shape == (4, 640)  # what the head's Linear reads: pruned width
    loss = distiller(logits, images, labels)
    teacher_features = FeatureTap(teacher, training_only=False)
    teacher_logits = teacher.eval()(images)
    expected = distillation_loss(logits, teacher_logits, labels, 0.5, 4) + 100.0 * similarity_loss(
        features, teacher_features.features)
    torch.testing.assert_close(loss, expected)
    loss.backward()  # the feature term reaches the student's backbone
    assert student.model[0].conv.weight.grad.abs().sum() > 0
    student.eval()(images)  # a validation pass does not replace what the loss reads
    assert distiller.student_tap.features is None


@pytest.fixture(scope="module")
def teacher(tmp_path_factory):
    return make_checkpoint(tmp_path_factory.mktemp("teacher") / "teacher.pt", nc=10)


@pytest.mark.slow
def test_distilled_training_resumes_with_its_teacher_and_hyp(data, teacher, tmp_path, monkeypatch):
    hyp = tmp_path / "hyp.yaml"
    hyp.write_text("scale: [0.5, 1.0]\nfliplr: 0.0\njitter: 0.0\n")
    options = dict(COMMON, data=str(data), project=str(tmp_path), teacher=str(teacher), distill_alpha=0.7,
                   distill_t=3.0, hyp=str(hyp))
    full = train.run(epochs=2, name="full", **options)

    class Killed(Exception):
        pass

    real_save = trainer.save_checkpoint

    def save_then_die(ckpt, path):
        real_save(ckpt, path)
        if path.name == "last.pt":
            raise Killed

    monkeypatch.setattr(trainer, "save_checkpoint", save_then_die)
    with pytest.raises(Killed):
        train.run(epochs=2, name="part", **options)
    monkeypatch.setattr(trainer, "save_checkpoint", real_save)
    last = tmp_path / "part" / "weights" / "last.pt"
    ckpt = torch.load(last, weights_only=True)
    expected_hyp = {"scale": [0.5, 1.0], "fliplr": 0.0, "flipud": 0.0, "jitter": 0.0, "label_smoothing": 0.1,
                    "mixup": 0.0}
    assert ckpt["hyp"] == expected_hyp and ckpt["opt"]["teacher"] == str(teacher)
    assert ckpt["opt"]["distill_alpha"] == 0.7 and ckpt["opt"]["distill_t"] == 3.0
    import yaml
    assert yaml.safe_load((tmp_path / "part" / "hyp.yaml").read_text()) == expected_hyp

    # the hyp file changes after the kill: the resumed run keeps the values it started with, and its teacher
    hyp.write_text("fliplr: 1.0\n")
    seen = {}
    real_distiller = train.Distiller

    def spy(teacher_model, alpha, temperature, label_smoothing, features):
        seen.update(alpha=alpha, temperature=temperature, label_smoothing=label_smoothing)
        return real_distiller(teacher_model, alpha, temperature, label_smoothing, features)

    monkeypatch.setattr(train, "Distiller", spy)
    resumed = train.run(resume=str(last), device="cpu", workers=0)
    assert seen == {"alpha": 0.7, "temperature": 3.0, "label_smoothing": 0.1}
    a, b = (torch.load(r["last"], weights_only=True) for r in (full, resumed))
    assert b["hyp"] == expected_hyp
    for k, v in a["model"].items():  # the same augmentation and teacher as the uninterrupted run: same weights
        torch.testing.assert_close(b["model"][k], v, rtol=0, atol=0, msg=k)


@pytest.mark.slow
def test_feature_distillation_through_a_fade_and_cut(data, teacher, tmp_path):
    """--distill-features follows the model across the cut (the student is replaced); it changes training."""
    options = dict(COMMON, data=str(data), epochs=2, project=str(tmp_path), weights=str(teacher), rate=0.5,
                   fade_epochs=1, teacher=str(teacher))
    logits_only = train.run(name="kd", **options)
    features = train.run(name="sp", distill_features=1000.0, **options)
    a, b = (torch.load(r["last"], weights_only=True) for r in (logits_only, features))
    assert b["opt"]["distill_features"] == 1000.0
    assert a["model"].keys() == b["model"].keys()
    assert any(not torch.equal(a["model"][k], b["model"][k]) for k in a["model"] if a["model"][k].is_floating_point())


@pytest.mark.slow
def test_distillation_changes_training(data, teacher, tmp_path):
    plain = train.run(data=str(data), epochs=1, project=str(tmp_path), name="plain", **COMMON)
    kd = train.run(data=str(data), epochs=1, project=str(tmp_path), name="kd", teacher=str(teacher), **COMMON)
    a, b = (torch.load(r["last"], weights_only=True)["model"] for r in (plain, kd))
    assert any(not torch.equal(a[k], b[k]) for k in a if a[k].is_floating_point())


@pytest.mark.parametrize("extra,words", [
    (["--teacher", "missing-teacher.pt"], ["--teacher", "missing-teacher.pt", "not found"]),
    (["--teacher", "WRONG"], ["--teacher", "predicts 3 classes", "has 10"]),
    (["--teacher", "TEACHER", "--distill-alpha", "2"], ["--distill-alpha", "[0, 1]"]),
    (["--teacher", "TEACHER", "--distill-features", "-1"], ["--distill-features", "0 or more"]),
    (["--sparsity", "-0.1"], ["--sparsity", "0 or more"]),
    (["--hyp", "HYP:flipud: 2"], ["flipud", "[0, 1]"]),
    (["--hyp", "HYP:mosaic: 1.0"], ["unknown key", "mosaic", "known keys"]),
    (["--hyp", "missing-hyp.yaml"], ["--hyp", "missing-hyp.yaml", "not found"]),
])
def test_cli_errors_are_one_line(data, teacher, tmp_path, capsys, extra, words):
    """Through run_cli, as the command line runs it (in-process: no interpreter start per case)."""
    args = []
    for a in extra:
        if a == "WRONG":
            a = str(make_checkpoint(tmp_path / "three.pt", nc=3))
        elif a == "TEACHER":
            a = str(teacher)
        elif a.startswith("HYP:"):
            (tmp_path / "hyp.yaml").write_text(a[4:] + "\n")
            a = str(tmp_path / "hyp.yaml")
        args.append(a)
    project = tmp_path / "runs"
    opt = train.parse_opt(argv=["--data", str(data), "--epochs", "1", "--project", str(project), "--cfg",
                                "yolov5n-cls.yaml", "--img", "32", "--workers", "0", "--device", "cpu", *args])
    with pytest.raises(SystemExit) as exit_info:
        run_cli(train.main, opt, prog="train.py")
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    error_lines = [ln for ln in err.splitlines() if "error:" in ln]
    assert len(error_lines) == 1 and all(w in error_lines[0] for w in words), err[-2000:]
    assert not project.exists()  # failed before any run folder was made
