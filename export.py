"""Export a (pruned or unpruned) YOLO classifier checkpoint to TorchScript, ONNX or an ultralytics checkpoint.

Usage:
    python export.py --weights runs/train-cls/exp/weights/best.pt --include torchscript onnx ultralytics

Files are written next to the weights (best.torchscript, best.onnx, best_ultralytics.pt). Each export is checked
against the PyTorch model on the same random input, and its size is shown next to the size of the same architecture
unpruned (rate 0), exported the same way. ONNX needs `pip install onnx` (onnxruntime to run the check,
onnxslim or onnxsim for --simplify).

`best_ultralytics.pt` is the model for ultralytics' own tools: `YOLO("best_ultralytics.pt").predict(...)`, `.val(...)`,
`.export(...)` (models/io/ultralytics_export.py; it needs `pip install ultralytics`). It takes ultralytics' inputs (RGB in
[0, 1]), as YOLOv8/YOLO11/YOLO26 models do here too; a YOLOv5-family model, trained on ImageNet-normalised inputs,
gets that normalisation as its first layer. Its weights are float32 (float16 with --half, as ultralytics' own files).
"""

import argparse
import json
import sys
import tempfile
import time
from copy import deepcopy
from pathlib import Path

FILE = Path(__file__).resolve()
ROOT = FILE.parents[0]
if str(ROOT) not in sys.path:
    sys.path.append(str(ROOT))

import torch  # noqa: E402

from models.experimental import attempt_load, check_classifier  # noqa: E402
from models.prune import is_pruned  # noqa: E402
from models.yolo import ClassificationModel, input_norm  # noqa: E402
from utils.atomic import atomic_path  # noqa: E402
from utils.cli import (HelpFormatter, UserError, check_at_least, check_img_size, check_writable,  # noqa: E402
                       model_imgsz, print_args, run_cli)
from utils.device import select_device  # noqa: E402
from utils.downloads import attempt_download  # noqa: E402
from utils.log import LOGGER, colorstr  # noqa: E402
from utils.onnx_export import quiet_deprecations, to_onnx  # noqa: E402
from utils.options import add_batch_size, add_data, add_device, add_half, add_imgsz, add_weights  # noqa: E402

# name → (title, file name ending): best.pt → best.torchscript, best.onnx, best_ultralytics.pt
FORMATS = {"torchscript": ("TorchScript", ".torchscript"), "onnx": ("ONNX", ".onnx"),
           "ultralytics": ("Ultralytics", "_ultralytics.pt")}
UNFUSED = {"ultralytics"}  # formats written from the unfused model: ultralytics folds BatchNorm itself when it loads


def file_size_mb(path):
    return Path(path).stat().st_size / 1e6


def model_config(model, im):
    """What a deployment needs besides the weights: input shape, stride and class names (upstream's keys)."""
    return {"shape": list(im.shape), "stride": int(max(getattr(model, "stride", torch.tensor([32])))),
            "names": list(model.names)}


def export_torchscript(model, im, file):
    """torch.jit.trace the model; config.txt (shape, stride, names) travels inside the file as upstream's does."""
    with quiet_deprecations():
        ts = torch.jit.trace(model, im, strict=False)
    with atomic_path(file) as tmp:  # a failed or killed export never leaves a broken file under the final name
        ts.save(str(tmp), _extra_files={"config.txt": json.dumps(model_config(model, im))})
    return file


def onnx_opsets():
    """(lowest, highest) ONNX opset torch's exporter takes, from torch's own table (private: 7 to 20 if it moves)."""
    try:
        from torch.onnx import _constants

        return _constants.ONNX_MIN_OPSET, _constants.ONNX_MAX_OPSET
    except (ImportError, AttributeError):
        return 7, 20


ONNX_OPSETS = onnx_opsets()


def export_onnx(model, im, file, opset=17, dynamic=False, simplify=False):
    """ONNX export (utils/onnx_export.py) with upstream's input/output names, then check the graph and store names as
    metadata."""
    import onnx

    axes = {"images": {0: "batch", 2: "height", 3: "width"}, "output0": {0: "batch"}} if dynamic else None
    with atomic_path(file) as tmp:  # exported, checked and annotated before it takes the final name
        to_onnx(model, im, tmp, ["images"], ["output0"], opset=opset, dynamic_axes=axes)
        model_onnx = onnx.load(str(tmp))
        onnx.checker.check_model(model_onnx)
        if simplify:
            model_onnx = simplify_onnx(model_onnx)
        mean, std = input_norm(model)
        for k, v in {**model_config(model, im), "normalization": json.dumps({"mean": mean, "std": std})}.items():
            meta = model_onnx.metadata_props.add()
            meta.key, meta.value = k, str(v)
        onnx.save(model_onnx, str(tmp))
    return file


def simplify_onnx(model_onnx):
    """onnxslim (upstream's current choice) or onnxsim when installed; otherwise the graph as is, with a warning."""
    try:
        import onnxslim

        return onnxslim.slim(model_onnx)
    except ImportError:
        pass
    try:
        import onnxsim

        simplified, ok = onnxsim.simplify(model_onnx)
        return simplified if ok else model_onnx
    except ImportError:
        LOGGER.warning("WARNING ⚠️ --simplify needs onnxslim or onnxsim (pip install onnxslim); not simplified")
        return model_onnx


def export_ultralytics(model, im, file, half=False):
    """The unfused float32 model as an ultralytics checkpoint, for im's image size (float16 weights with half)."""
    from models.io.ultralytics_export import export_ultralytics as write

    return write(model, file, imgsz=list(im.shape[2:]), half=half)


def height_width(imgsz):
    """[h, w] from --imgsz (an int, or upstream's 1- or 2-element list), checked as YOLOv5 checks sizes."""
    sizes = [imgsz] * 2 if isinstance(imgsz, int) else list(imgsz) * (2 if len(imgsz) == 1 else 1)
    return check_img_size(sizes)


def export_int8(fp32_file, model, im, data):
    """<name>-int8.onnx beside the FP32 file: ONNX Runtime's static quantization, calibrated on --data's training
    images (utils/quantize.py); logs how often its top-1 agrees with the FP32 file's on them."""
    from utils.quantize import calibration_batches, quantize_onnx, top1_agreement

    t = time.time()
    LOGGER.info(f"\n{colorstr('INT8:')} quantizing {fp32_file} (weights per channel, activations calibrated on "
                f"{data}'s training images)...")
    batches = calibration_batches(data, im.shape[-1], input_norm(model), im.shape[0])
    f = quantize_onnx(fp32_file, Path(fp32_file).with_name(f"{Path(fp32_file).stem}-int8.onnx"), batches)
    agree = top1_agreement(fp32_file, f, batches)
    LOGGER.info(f"{colorstr('INT8:')} export success ✅ {time.time() - t:.1f}s, saved as {f} ({file_size_mb(f):.1f} "
                f"MB); top-1 as the FP32 file's on {agree:.1%} of {sum(len(b) for b in batches)} calibration images")
    return f


def export_file(weights, fmt):
    """Where format fmt of `weights` is written: beside it, the stem plus the format's ending."""
    return weights.with_name(weights.stem + FORMATS[fmt][1])


def run_torchscript(file, im):
    with quiet_deprecations():
        model = torch.jit.load(str(file), map_location=im.device)
    return model(im)


def run_onnx(file, im):
    """Outputs of the ONNX file under onnxruntime, or None when onnxruntime is not installed."""
    try:
        import onnxruntime as ort
    except ImportError:
        return None
    providers = ["CUDAExecutionProvider", "CPUExecutionProvider"] if im.is_cuda else ["CPUExecutionProvider"]
    providers = [p for p in providers if p in ort.get_available_providers()]
    session = ort.InferenceSession(str(file), providers=providers)
    y = session.run(None, {session.get_inputs()[0].name: im.cpu().numpy()})[0]
    return torch.from_numpy(y)


def run_ultralytics(file, im):
    """Logits of the ultralytics checkpoint, loaded and run by ultralytics itself."""
    from models.io.ultralytics_export import ultralytics_logits

    return ultralytics_logits(file, im)


RUNNERS = {"torchscript": run_torchscript, "onnx": run_onnx, "ultralytics": run_ultralytics}
EXPORTERS = {"torchscript": export_torchscript, "onnx": export_onnx, "ultralytics": export_ultralytics}


def check_outputs(fmt, file, im, expected, tol):
    """Log whether the exported file reproduces `expected` on im within tol; returns the max difference."""
    title = FORMATS[fmt][0]
    try:
        y = RUNNERS[fmt](file, im)
    except Exception as e:  # e.g. a runtime without FP16 kernels: the file is written, only the check is missing
        reason = str(e).splitlines()[0][:200] if str(e) else type(e).__name__
        LOGGER.warning(f"WARNING ⚠️ {title}: outputs not checked, running the file failed: {reason}")
        return None
    if y is None:
        LOGGER.info(f"{title}: outputs not checked (pip install onnxruntime to check them)")
        return None
    diff = (y.float().cpu() - expected.float().cpu()).abs().max().item()
    if diff <= tol:
        LOGGER.info(f"{title}: outputs match PyTorch (max |difference| {diff:.2e} <= {tol:g})")
    else:
        LOGGER.warning(f"WARNING ⚠️ {title}: outputs differ from PyTorch by up to {diff:.2e} (> {tol:g})")
    return diff


def unpruned_twin(model):
    """The same architecture at rate 0 (what the model was pruned from), or None when it is not pruned."""
    if not is_pruned(model):
        return None
    twin = ClassificationModel(model.yaml, rate=0.0)  # a rate argument replaces the YAML's plan (rates and widths)
    twin.names = list(model.names)
    return twin.eval()


def unpruned_sizes(model, im, include, options):
    """File size (MB) per format of the rate-0 twin, exported the same way into a temp folder; {} if not pruned."""
    twin = unpruned_twin(model)
    if twin is None:
        return {}
    unfused = twin.to(im.device)
    twin = deepcopy(unfused).fuse()
    twin = twin.half() if im.dtype == torch.half else twin
    sizes = {}
    with tempfile.TemporaryDirectory() as tmp:
        for fmt in include:
            file = Path(tmp) / f"unpruned{FORMATS[fmt][1]}"
            source = unfused if fmt in UNFUSED else twin
            sizes[fmt] = file_size_mb(EXPORTERS[fmt](source, im, file, **options.get(fmt, {})))
    return sizes


def parse_include(include):
    include = [x.lower() for x in ([include] if isinstance(include, str) else include)]
    include = [x for item in include for x in item.replace(",", " ").split()]
    unknown = sorted(set(include) - set(FORMATS))
    if unknown or not include:
        raise ValueError(f"--include {' '.join(unknown) or '(nothing)'}: supported formats are {', '.join(FORMATS)}")
    return list(dict.fromkeys(include))  # keep order, drop repeats


def check_formats(include, opset, int8, data, dynamic, half):
    """Fail before any work on a format whose package is missing or on --int8/--opset settings that cannot work."""
    if "onnx" in include:
        try:
            import onnx  # noqa: F401
        except ImportError:
            raise UserError("ONNX export needs the onnx package: pip install onnx (and onnxruntime to check the "
                            "exported outputs)") from None
    if "onnx" in include and not ONNX_OPSETS[0] <= opset <= ONNX_OPSETS[1]:
        raise UserError(f"--opset {opset}: torch {torch.__version__} exports ONNX opsets {ONNX_OPSETS[0]} to "
                        f"{ONNX_OPSETS[1]}")
    if int8 and ("onnx" not in include or not data or dynamic or half):
        raise UserError("--int8 quantizes the ONNX export from calibration images: give it with --include onnx and "
                        "--data (a dataset whose train/ images calibrate), without --dynamic or --half")
    if "ultralytics" in include:
        try:
            import ultralytics  # noqa: F401
        except ImportError:
            raise UserError("--include ultralytics needs the ultralytics package: pip install ultralytics") from None


def check_half(half, dynamic, device):
    if half and device.type != "cuda":
        raise ValueError("--half only works for GPU export, i.e. use --device 0")
    if half and dynamic:
        raise ValueError("--half is not compatible with --dynamic, i.e. use either --half or --dynamic")


def deployed_model(reference, imgsz, batch_size, device, half):
    """(model, im, expected, tol): the fused model as deployed (FP16 with half), a fixed random input batch, the
    unfused FP32 reference's outputs on it and how close each export must come to them."""
    model = deepcopy(reference).fuse().eval()  # BN folded into convs, as deployed
    for p in model.parameters():
        p.requires_grad = False
    gen = torch.Generator().manual_seed(0)
    im = torch.randn(batch_size, 3, *imgsz, generator=gen).to(device)
    expected = reference(im)
    tol = 1e-4 * max(1.0, expected.abs().max().item())  # absolute 1e-4, relative for large logits
    if half:
        im, model = im.half(), model.half()
        tol = 1e-2 * max(1.0, expected.abs().max().item())
    model(im)  # dry run, as upstream, so lazily built state exists before tracing
    return model, im, expected, tol


def export_formats(file, include, models, im, expected, tol, options, int8=False, data=""):
    """Write, time and check each format of include (and the INT8 file after the ONNX one with int8); returns
    (the files written, their sizes in MB by format, 'int8' included). models: (unfused reference, fused model)."""
    reference, model = models
    exported, sizes = [], {}
    for fmt in include:
        title = FORMATS[fmt][0]
        t = time.time()
        LOGGER.info(f"\n{colorstr(title + ':')} starting export with torch {torch.__version__}...")
        source = reference if fmt in UNFUSED else model
        f = EXPORTERS[fmt](source, im, export_file(file, fmt), **options.get(fmt, {}))
        LOGGER.info(f"{colorstr(title + ':')} export success ✅ {time.time() - t:.1f}s, saved as {f} "
                    f"({file_size_mb(f):.1f} MB)")
        check_outputs(fmt, f, im, expected, tol)
        exported.append(str(f))
        sizes[fmt] = file_size_mb(f)
        if fmt == "onnx" and int8:
            exported.append(str(export_int8(f, model, im, data)))
            sizes["int8"] = file_size_mb(exported[-1])
    return exported, sizes


def log_sizes(include, sizes, unpruned):
    """The size of each file, beside that of the same architecture unpruned and, for INT8, of the FP32 file."""
    for fmt in include:
        size = f"{FORMATS[fmt][0]:<12} {sizes[fmt]:8.2f} MB"
        if fmt in unpruned:
            size += f"   unpruned {unpruned[fmt]:8.2f} MB   ({sizes[fmt] / unpruned[fmt]:.1%} of unpruned)"
        LOGGER.info(size)
    if "int8" in sizes:
        LOGGER.info(f"{'ONNX INT8':<12} {sizes['int8']:8.2f} MB   ({sizes['int8'] / sizes['onnx']:.1%} of the FP32 file)")


@torch.inference_mode()
def run(
    weights="yolov5s-cls.pt",  # weights path
    imgsz=None,  # image (height, width); None: the model's training size (from its checkpoint), else 224
    batch_size=1,  # batch size
    device="cpu",  # cuda device, i.e. 0 or 0,1,2,3 or cpu
    include=("torchscript",),  # formats: torchscript, onnx, ultralytics
    half=False,  # FP16 half-precision export (CUDA only)
    opset=17,  # ONNX: opset version
    dynamic=False,  # ONNX: dynamic batch and image size
    simplify=False,  # ONNX: simplify the graph (onnxslim or onnxsim)
    int8=False,  # ONNX: also an INT8 file, <name>-int8.onnx (ONNX Runtime static quantization), calibrated on --data
    data="",  # INT8 calibration images: a dataset name or ImageFolder root (its train/ split)
):
    """Export weights to each format in include; returns the list of exported file paths."""
    t0 = time.time()
    include = parse_include(include)
    check_formats(include, opset, int8, data, dynamic, half)
    imgsz = None if imgsz is None else height_width(imgsz)
    check_at_least("--batch-size", batch_size, 1)
    device = select_device(device)
    check_half(half, dynamic, device)

    file = Path(attempt_download(weights))
    check_writable(file.parent, "export folder (beside --weights)")
    reference = check_classifier(attempt_load(file, device=device), file, "export.py")  # unfused FP32: the truth
    imgsz = height_width(model_imgsz(imgsz, reference))
    if "ultralytics" in include:  # before any file is written: a model ultralytics cannot hold is refused first
        from models.io.ultralytics_export import ultralytics_model

        ultralytics_model(reference)
    model, im, expected, tol = deployed_model(reference, imgsz, batch_size, device, half)
    LOGGER.info(f"\n{colorstr('PyTorch:')} starting from {file} with output shape {tuple(expected.shape)} "
                f"({file_size_mb(file):.1f} MB)")

    options = {"onnx": dict(opset=opset, dynamic=dynamic, simplify=simplify), "ultralytics": dict(half=half)}
    exported, sizes = export_formats(file, include, (reference, model), im, expected, tol, options, int8, data)
    unpruned = unpruned_sizes(model, im, include, options)
    LOGGER.info(f"\nExport complete ({time.time() - t0:.1f}s)"
                f"\nResults saved to {colorstr('bold', file.parent.resolve())}")
    log_sizes(include, sizes, unpruned)
    LOGGER.info("Visualize:   https://netron.app")
    return exported


def parse_opt(argv=None):
    parser = argparse.ArgumentParser(description="Export a YOLO classifier to TorchScript / ONNX / ultralytics",
                                     formatter_class=HelpFormatter)
    add_weights(parser, "model.pt path(s), each exported", several=True)
    add_imgsz(parser, hw=True)
    add_batch_size(parser, "export")
    add_device(parser, default="cpu")
    add_half(parser, "FP16 half-precision export (CUDA only); ultralytics: float16 weights")
    parser.add_argument("--dynamic", action="store_true", help="ONNX: dynamic axes")
    parser.add_argument("--simplify", action="store_true", help="ONNX: simplify model (onnxslim or onnxsim)")
    parser.add_argument("--opset", type=int, default=17, help="ONNX: opset version")
    parser.add_argument("--int8", action="store_true",
                        help="ONNX: also <name>-int8.onnx, ONNX Runtime static quantization calibrated on --data")
    add_data(parser, "--int8 calibration: dataset name or ImageFolder root", default="")
    parser.add_argument("--include", nargs="+", default=["torchscript"], help=f"formats: {', '.join(FORMATS)}")
    opt = parser.parse_args(argv)
    print_args(vars(opt))
    return opt


def main(opt):
    weights = opt.weights if isinstance(opt.weights, list) else [opt.weights]
    exported = []
    for w in weights:  # upstream accepts several weights files
        exported += run(**{**vars(opt), "weights": w})
    return exported


if __name__ == "__main__":
    run_cli(main, parse_opt())
