"""INT8 after pruning: ONNX Runtime's static quantization of an exported FP32 ONNX classifier.

Weights are quantized per output channel (int8), activations per tensor (uint8) with ranges calibrated on
training images preprocessed exactly as validation preprocesses them; the graph is written in QDQ form, which
ONNX Runtime fuses into integer kernels on the CPU. The FP32 file's metadata (class names, shape, normalisation)
is carried over, so val.py and predict.py run the INT8 file as they run the FP32 one.
"""

import tempfile
from itertools import islice
from pathlib import Path

import numpy as np

from utils.atomic import atomic_path

CALIBRATION_IMAGES = 256  # enough for stable per-tensor ranges of a small classifier; more only costs time


def calibration_batches(data, imgsz, norm, batch_size, images=CALIBRATION_IMAGES, seed=0):
    """Up to `images` training images of `data` as float32 arrays of `batch_size` (val preprocessing, shuffled)."""
    from utils.dataloaders import create_classification_dataloader
    from utils.datasets import check_cls_dataset

    loader = create_classification_dataloader(check_cls_dataset(data) / "train", imgsz=imgsz, batch_size=batch_size,
                                              augment=False, workers=0, shuffle=True, seed=seed, norm=norm)
    batches = [x.numpy().astype(np.float32) for x, _ in islice(loader, max(1, images // batch_size))]
    return [b for b in batches if len(b) == batch_size]  # a fixed-batch graph takes full batches only


def quantize_onnx(fp32_file, int8_file, batches, input_name="images"):
    """Write the INT8 (QDQ) version of `fp32_file` to `int8_file`, calibrated on `batches`; returns int8_file."""
    import onnx
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.batches = iter(batches)

        def get_next(self):
            x = next(self.batches, None)
            return None if x is None else {input_name: x}

    with atomic_path(int8_file) as tmp, tempfile.TemporaryDirectory() as work:
        prepared = Path(work) / "prepared.onnx"
        quant_pre_process(str(fp32_file), str(prepared))  # shapes inferred and graph optimised, as ORT advises
        quantize_static(str(prepared), str(tmp), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                        weight_type=QuantType.QInt8, activation_type=QuantType.QUInt8)
        quantized, source = onnx.load(str(tmp)), onnx.load(str(fp32_file))
        del quantized.metadata_props[:]
        quantized.metadata_props.extend(source.metadata_props)
        onnx.save(quantized, str(tmp))
    return int8_file


def top1_agreement(fp32_file, int8_file, batches):
    """Share of the images in `batches` whose top-1 class the INT8 file predicts as the FP32 one does."""
    from utils.onnx_model import OnnxClassifier

    import torch

    a, b = OnnxClassifier(fp32_file), OnnxClassifier(int8_file)
    same = [(a(torch.from_numpy(x)).argmax(1) == b(torch.from_numpy(x)).argmax(1)).float() for x in batches]
    return torch.cat(same).mean().item() if same else float("nan")
