"""An exported ONNX classifier (FP32 or INT8) run by ONNX Runtime behind the interface val.py and predict.py use:
called on a float batch it returns logits, with `names`, `nc`, its input normalisation and its image size."""

import ast
import json

import numpy as np
import torch

from utils.augmentations import IMAGENET_NORM


class OnnxClassifier:
    """ONNX Runtime session of a file export.py wrote. Its metadata (export.py model_config) gives the class names,
    the input shape and the normalisation the model expects; a fixed batch size is served in chunks."""

    def __init__(self, path, threads=0):
        import onnxruntime as ort

        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        try:
            self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as e:  # ONNX Runtime's errors for a corrupt or foreign file span lines
            raise ValueError(f"'{path}' is not an ONNX model ONNX Runtime can run: "
                             f"{next(iter(str(e).splitlines()), type(e).__name__)}") from None
        meta = self.session.get_modelmeta().custom_metadata_map
        if "names" not in meta:
            raise ValueError(f"'{path}' has no class names in its metadata: export it with export.py")
        self.names = [str(n) for n in ast.literal_eval(meta["names"])]  # a Python list's repr, read as data
        self.nc = len(self.names)
        self.input = self.session.get_inputs()[0]
        batch, _, h, w = self.input.shape
        self.batch = batch if isinstance(batch, int) else None  # None: dynamic
        self.size = (h, w) if isinstance(h, int) and isinstance(w, int) else None
        self.trained_imgsz = h if self.size and h == w else None
        norm = json.loads(meta["normalization"]) if "normalization" in meta else None
        if norm is None:  # written before export.py recorded it: YOLOv5's ImageNet normalisation is the guess
            from utils.log import LOGGER

            LOGGER.warning(f"WARNING ⚠️ {path} does not say how its inputs are normalised: assuming ImageNet's "
                           f"(YOLOv5 models); export it again with export.py to record it")
        self.input_mean_std = (tuple(norm["mean"]), tuple(norm["std"])) if norm else IMAGENET_NORM
        self.device = torch.device("cpu")
        self.path = str(path)

    def check_size(self, imgsz):
        """A one-line ValueError unless the file takes imgsz x imgsz images (a fixed-size export)."""
        if self.size and (imgsz, imgsz) != tuple(self.size):
            raise ValueError(f"{self.path} takes {self.size[0]}x{self.size[1]} images, not {imgsz}x{imgsz}: leave "
                             f"--imgsz out, or export with --dynamic")
        return imgsz

    def __call__(self, x):
        if self.size and tuple(x.shape[2:]) != tuple(self.size):
            raise ValueError(f"{self.path} takes {self.size[0]}x{self.size[1]} images, not {x.shape[2]}x{x.shape[3]}")
        x = x.detach().float().cpu().numpy()
        step = self.batch or len(x)
        out = []
        for i in range(0, len(x), step):
            chunk = x[i:i + step]
            pad = step - len(chunk)
            if pad:  # a fixed batch size: fill the last chunk, drop the filler's outputs
                chunk = np.concatenate([chunk, np.zeros((pad, *chunk.shape[1:]), chunk.dtype)])
            y = self.session.run(None, {self.input.name: chunk})[0]
            out.append(y[:len(y) - pad])
        return torch.from_numpy(np.concatenate(out))

    # the few nn.Module calls val.py and predict.py make
    def eval(self):
        return self

    def float(self):
        return self

    def half(self):
        raise ValueError("--half runs PyTorch models on CUDA; an ONNX file keeps the precision it was exported at")

    def to(self, *args, **kwargs):
        return self
