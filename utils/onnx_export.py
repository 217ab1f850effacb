"""ONNX export with one set of choices: torch's legacy (TorchScript-based) exporter, its deprecation notices hidden.

export.py writes deployment files with it and models/latency.py times layers on ONNX Runtime with it, so what is timed
is the graph that is deployed.
"""

import inspect
import warnings
from contextlib import contextmanager

import torch


@contextmanager
def quiet_deprecations():
    """Hide torch's notices that jit and the TorchScript-based ONNX exporter are deprecated: both still work and
    are what deployment runtimes load today; the notices would only bury this tool's own output."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        yield


def to_onnx(module, inputs, f, input_names, output_names=None, opset=17, dynamic_axes=None):
    """torch.onnx.export of `module` on `inputs` (a tensor or a tuple) to `f` (a path or a binary file object such as
    io.BytesIO), constants folded, at `opset`, with the given input/output names and dynamic axes."""
    # The legacy exporter needs only `onnx`; torch >= 2.9 defaults to the dynamo one, which also needs onnxscript.
    legacy = {"dynamo": False} if "dynamo" in inspect.signature(torch.onnx.export).parameters else {}
    with quiet_deprecations():
        torch.onnx.export(module, inputs, f if hasattr(f, "write") else str(f), verbose=False, opset_version=opset,
                          do_constant_folding=True, input_names=input_names, output_names=output_names,
                          dynamic_axes=dynamic_axes, **legacy)
    return f
