"""ultralytics (YOLOv8/YOLO11/YOLO26) .pt files: written by the installed ultralytics package itself, read through the
weights-only unpickler, rebuilt as this project's models. Random BatchNorm statistics (ultralytics' are 0/1 before
training) and half-precision storage, as ultralytics saves; the references are ultralytics' models after the same
half → float round trip."""

import os
import subprocess
import sys
import textwrap

import pytest
import torch

from data.builtin import make_builtin_dataset
from models.criteria import compute_scores
from models.experimental import attempt_load
from models.io.checkpoints import UnsafeCheckpointError, load_checkpoint
from models.prune import load_model
from models.yolo import ClassificationModel, DetectionModel, cfg_of, classifier_yaml

from helpers import ROOT, Payload, lively

ARCHS = ["yolov8n", "yolo11n", "yolo26n"]
IMGSZ = 64


def n_params(model):
    return sum(p.numel() for p in model.parameters())


def saved_by_ultralytics(cfg, path, seed=0, namespace_args=False, fields=None, bn_eps=None):
    """ultralytics' YOLO(cfg) with random weights and BN statistics, written by its own YOLO.save (half precision).
    namespace_args: the model carries its arguments as an IterableSimpleNamespace, as in a detector training
    checkpoint; fields: extra checkpoint entries; bn_eps: every BatchNorm's eps. Returns ultralytics' model as
    stored: half → float, eval mode."""
    from ultralytics import YOLO
    from ultralytics.utils import IterableSimpleNamespace

    yolo = YOLO(cfg, verbose=False)
    lively(yolo.model, seed)
    for m in yolo.model.modules():
        if bn_eps and isinstance(m, torch.nn.BatchNorm2d):
            m.eps = bn_eps
    if namespace_args:
        yolo.model.args = IterableSimpleNamespace(**yolo.model.args)
    yolo.ckpt = dict(fields or {})  # YOLO.save writes these beside the model
    yolo.save(path)
    return yolo.model.half().float().eval()


@pytest.fixture(scope="module")
def classifiers(tmp_path_factory):
    """{arch: (path of its -cls .pt, ultralytics' model)}."""
    root = tmp_path_factory.mktemp("ultralytics-cls")
    return {a: (root / f"{a}-cls.pt", saved_by_ultralytics(f"{a}-cls.yaml", root / f"{a}-cls.pt")) for a in ARCHS}


@pytest.mark.parametrize("arch", ARCHS)
def test_classifier_checkpoint_reproduces_ultralytics_outputs(classifiers, arch):
    path, reference = classifiers[arch]
    model = attempt_load(path)
    assert type(model) is ClassificationModel and not model.training  # rebuilt from the YAML, not the pickle
    assert next(model.parameters()).dtype == torch.float32
    assert model.nc == 1000 and model.names == [str(i) for i in range(1000)]  # {i: name} in the file
    ref_state = reference.state_dict()
    assert all(torch.equal(v, ref_state[k]) for k, v in model.state_dict().items())
    x = torch.rand(2, 3, IMGSZ, IMGSZ)
    with torch.no_grad():
        probs, logits = reference(x)  # ultralytics' Classify in eval: (softmax, logits)
        ours = model(x)  # ours: logits
    assert logits.std() > 0.1  # outputs that depend on the weights
    assert torch.allclose(ours, logits, atol=1e-4)
    assert torch.allclose(ours.softmax(1), probs, atol=1e-4)


@pytest.mark.parametrize("arch", ARCHS)
def test_classifier_checkpoint_maps_into_pruned_models(classifiers, arch):
    path, reference = classifiers[arch]
    cfg = cfg_of(attempt_load(path))
    full = load_model(ClassificationModel(cfg, rate=0.0), path).eval()
    ref_state = reference.state_dict()
    assert all(torch.equal(v, ref_state[k]) for k, v in full.state_dict().items())  # rate 0: exact
    pruned = load_model(ClassificationModel(cfg, rate=0.5), path, compute_scores(full, "l1")).eval()
    assert n_params(pruned) < n_params(full) / 2
    with torch.no_grad():
        assert torch.isfinite(pruned(torch.rand(2, 3, IMGSZ, IMGSZ))).all()


def test_classifier_keeps_the_batchnorm_eps_it_was_built_with(tmp_path):
    """A classifier built with a detector's BatchNorm eps (1e-3, not torch's 1e-5) is rebuilt with it."""
    reference = saved_by_ultralytics("yolov8n-cls.yaml", tmp_path / "cls.pt", bn_eps=1e-3)
    model = attempt_load(tmp_path / "cls.pt")
    assert model.yaml["bn_eps"] == 1e-3
    x = torch.rand(2, 3, IMGSZ, IMGSZ)
    with torch.no_grad():
        assert torch.allclose(model(x), reference(x)[1], atol=1e-4)


def backbone_output(layers, x):
    """Layers 0-8 of a backbone, each run with its own forward (the backbone is a chain: every layer reads -1)."""
    for m in layers[:9]:
        assert m.f == -1
        x = m(x)
    return x


@pytest.mark.parametrize("arch", ["yolo11n", "yolo26n", "yolov8n"])
def test_detector_into_the_classifier_yaml_of_its_family(tmp_path, arch, logs):
    """`--weights yolo11n.pt --cfg yolo11n-cls.yaml`: the layers the two YAMLs share are copied; the classifier's
    own layer 9 (a C2PSA where the detector has an SPPF) keeps its initialisation, and a line says so."""
    reference = saved_by_ultralytics(f"{arch}.yaml", tmp_path / "det.pt", namespace_args=True)
    source = attempt_load(tmp_path / "det.pt")
    for rate in (0.0, 0.5):
        model = ClassificationModel(f"{arch}-cls.yaml", nc=10, rate=rate)
        # any scores of the unpruned architecture will do: what is checked is which layers are copied
        scores = compute_scores(ClassificationModel(f"{arch}-cls.yaml", nc=10), "l1") if rate else None
        load_model(model, source, scores)
        if not rate:  # layers 0-8 are the detector's, tensor for tensor
            theirs = reference.state_dict()
            shared = {k: v for k, v in model.state_dict().items() if int(k.split(".")[1]) < 9}
            assert len(shared) > 100 and all(torch.equal(v, theirs[k].to(v.dtype)) for k, v in shared.items())
    differs = [r.getMessage() for r in logs.records if "initialised, not copied" in r.getMessage()]
    if arch == "yolov8n":  # yolov8n-cls.yaml's layers 0-8 are the detector's: nothing to say
        assert not differs
    else:
        assert differs and "layer 9 (C2PSA; the detector has SPPF there)" in differs[0]


@pytest.mark.parametrize("arch", ARCHS + ["yolov8n-seg", "yolo26n-pose"])
def test_detector_checkpoint_backbone_feeds_classifiers(tmp_path, arch):
    reference = saved_by_ultralytics(f"{arch}.yaml", tmp_path / "det.pt", namespace_args=True)
    source = attempt_load(tmp_path / "det.pt")
    assert isinstance(source, DetectionModel)
    cfg = classifier_yaml(cfg_of(source))  # the detector's YAML cut after layer 8, Classify head added
    model = load_model(ClassificationModel(cfg, nc=10, rate=0.0), source).eval()
    x = torch.rand(2, 3, IMGSZ, IMGSZ)
    with torch.no_grad():
        expected = backbone_output(reference.model, x)
        assert torch.allclose(backbone_output(model.model, x), expected, atol=1e-3)
    if "-" not in arch:  # other tasks share the detector's backbone: pruning them is the same
        pruned = load_model(ClassificationModel(cfg, nc=10, rate=0.5), source, compute_scores(model, "l1"))
        assert n_params(pruned) < n_params(model) / 2


def test_unknown_ultralytics_class_is_refused_in_one_line(tmp_path):
    from ultralytics.nn.modules.block import C2fAttn  # YOLO-World's block: not implemented here

    torch.save({"model": C2fAttn(16, 16), "version": "8.4"}, tmp_path / "world.pt")
    with pytest.raises(UnsafeCheckpointError) as e:
        load_checkpoint(tmp_path / "world.pt")
    assert "needs ultralytics' ultralytics.nn.modules.block.C2fAttn, which this project does not implement" in str(
        e.value) and "\n" not in str(e.value)


def test_code_inside_an_ultralytics_checkpoint_is_refused_unrun(tmp_path):
    marker = tmp_path / "pwned"
    saved_by_ultralytics("yolov8n-cls.yaml", tmp_path / "rigged.pt", fields={"train_args": Payload(marker)})
    with pytest.raises(UnsafeCheckpointError) as e:
        attempt_load(tmp_path / "rigged.pt")
    assert "system" in str(e.value) and "\n" not in str(e.value)
    assert not marker.exists()


# ultralytics' own trainer, one epoch fine-tuning a yolov8n-cls .pt: the checkpoint of that epoch (its EMA, optimizer,
# train_args, transforms), and the logits of that EMA as stored (half → float) for a fixed input. A subprocess keeps
# ultralytics' global settings (seeds, deterministic algorithms) out of this test session.
TRAIN_ULTRALYTICS = textwrap.dedent("""
    import copy, sys, torch
    from ultralytics import YOLO
    weights, data, project = sys.argv[1:]
    yolo = YOLO(weights, verbose=False)
    yolo.train(data=data, epochs=1, imgsz=32, batch=4, workers=0, device="cpu", plots=False, amp=False, save_period=1,
               project=project, name="run", exist_ok=True, verbose=False, deterministic=False)
    ema = copy.deepcopy(yolo.trainer.ema.ema).half().float().eval()  # what epoch0.pt holds
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        probs, logits = ema(x)
    torch.save({"x": x, "logits": logits}, f"{project}/reference.pt")
""")


def subprocess_env(tmp_path):
    env = dict(os.environ, OMP_NUM_THREADS="1", YOLO_OFFLINE="1", PYTHONPATH=str(ROOT),
               YOLOV5_DATASETS_DIR=str(tmp_path / "datasets"))
    env.pop("YOLOV5_DEBUG", None)
    return env


@pytest.fixture(scope="module")
def trained_by_ultralytics(tmp_path_factory):
    """(tiny image folder, ultralytics' epoch checkpoint, {'x', 'logits'} of ultralytics' model for it)."""
    root = tmp_path_factory.mktemp("ultralytics-train")
    data = make_builtin_dataset(root / "tiny", n_train=4, n_val=2, size=32)
    saved_by_ultralytics("yolov8n-cls.yaml", root / "start.pt")  # input-dependent outputs from the start
    args = [sys.executable, "-c", TRAIN_ULTRALYTICS, str(root / "start.pt"), str(data), str(root / "runs")]
    subprocess.run(args, check=True, env=subprocess_env(root), capture_output=True, timeout=300)
    return data, root / "runs" / "run" / "weights" / "epoch0.pt", torch.load(root / "runs" / "reference.pt")


@pytest.mark.subprocess
@pytest.mark.slow
def test_training_checkpoint_of_ultralytics_trainer_loads(trained_by_ultralytics):
    data, path, reference = trained_by_ultralytics
    ckpt = load_checkpoint(path)
    assert ckpt["model"] is None and ckpt["optimizer"] and ckpt["train_args"]["epochs"] == 1  # a training checkpoint
    model = attempt_load(path)  # its EMA
    assert model.names == sorted(p.name for p in (data / "train").iterdir() if p.is_dir()) and model.nc == 10
    assert (reference["logits"][0] - reference["logits"][1]).abs().max() > 0.01  # the logits depend on the image
    with torch.no_grad():
        assert torch.allclose(model(reference["x"]), reference["logits"], atol=1e-4)


@pytest.mark.subprocess
@pytest.mark.slow
def test_train_on_ultralytics_checkpoint_then_predict(trained_by_ultralytics, tmp_path):
    data, path, _ = trained_by_ultralytics
    env = subprocess_env(tmp_path)
    train = [sys.executable, str(ROOT / "classify" / "train.py"), "--weights", str(path), "--rate", "0.5",
             "--data", str(data), "--epochs", "1", "--imgsz", "32", "--batch-size", "8", "--workers", "0",
             "--device", "cpu", "--criterion", "l1", "--project", str(tmp_path), "--name", "pruned"]
    subprocess.run(train, check=True, env=env, capture_output=True, timeout=120)
    best = tmp_path / "pruned" / "weights" / "best.pt"
    assert attempt_load(best).yaml["scale"] == "n"  # this project's checkpoint of the ultralytics architecture
    image = next((data / "val" / "dots").iterdir())
    predict = [sys.executable, str(ROOT / "classify" / "predict.py"), "--weights", str(best), "--source", str(image),
               "--imgsz", "32", "--device", "cpu", "--project", str(tmp_path), "--name", "predict"]
    out = subprocess.run(predict, check=True, env=env, capture_output=True, text=True, timeout=120)
    assert image.name in out.stderr + out.stdout and (tmp_path / "predict" / image.name).is_file()


def test_globals_ultralytics_registers_do_not_change_what_loads(classifiers):
    """ultralytics' own loader registers its classes process-wide; this project's loads still build this project's
    classes from ultralytics' names, and leave that registration as they found it."""
    from ultralytics.nn.tasks import torch_safe_load

    path, _ = classifiers["yolo11n"]
    torch_safe_load(path, safe_only=True)  # ultralytics' restricted load registers what the file names
    registered = torch.serialization.get_safe_globals()
    assert any(isinstance(g, tuple) and g[1] == "ultralytics.nn.tasks.ClassificationModel" for g in registered)
    assert type(attempt_load(path)) is ClassificationModel
    assert set(torch.serialization.get_safe_globals()) == set(registered)


def test_ultralytics_release_names_download(tmp_path, monkeypatch, classifiers):
    """`--weights yolo11n-cls.pt` not on disk: fetched from ultralytics' release page (a local server here), then
    loaded; offline, a one-line error that says where to put the file."""
    import shutil

    import utils.downloads as downloads
    from helpers import http_server

    release = tmp_path / "release"
    release.mkdir()
    path, reference = classifiers["yolo11n"]
    shutil.copy(path, release / "yolo11n-cls.pt")
    monkeypatch.setattr(downloads, "WEIGHTS_DIR", tmp_path / "weights")
    assert downloads.ULTRALYTICS_RELEASE_URL.startswith("https://github.com/ultralytics/assets/releases/")
    with http_server(release) as url:
        local = downloads.attempt_download("yolo11n-cls.pt", release_url=url)
    assert local == tmp_path / "weights" / "yolo11n-cls.pt"
    x = torch.rand(1, 3, IMGSZ, IMGSZ)
    with torch.no_grad():
        assert (attempt_load(local)(x) - reference(x)[1]).abs().max() <= 1e-4
    with pytest.raises(FileNotFoundError, match="download it by hand"):
        downloads.attempt_download("yolo26s-cls.pt", release_url="http://127.0.0.1:9")  # closed local port
