"""Latency budgets on the runtime users deploy: measured latency tables and the plan latency they predict.

`--target-latency F` is a fraction of the unpruned model's latency on a runtime (ONNX Runtime on the CPU by default,
or PyTorch on --device) at a batch size. Widths are chosen from a table measured on that runtime, not from FLOPs:
elementwise operations scale with width rather than FLOPs, the stem cannot shrink, and small convolutions cost more
per FLOP than large ones. The table times every conv layer alone (with its folded BatchNorm and activation, as
export.py writes them) at several input and output widths and fits seconds = a + b·out + c·in + d·in·out per layer;
a plan's latency is predicted as the layers' sum at its widths plus what they do not explain in the unpruned model.
The allocation then measures its plan as a whole and corrects the target (models.allocation.allocate_latency).

Timing: blocks of forwards in alternating order over rounds, the fastest block per candidate (other tenants only ever
slow a block down); ONNX Runtime gets as many threads as PyTorch. A table is cached in a JSON file per
(architecture, image size, runtime, batch, threads, machine) and reused.
"""

import hashlib
import importlib.util
import io
import json
import platform
import time
from copy import deepcopy
from pathlib import Path

import torch
import torch.nn as nn

from utils.onnx_export import to_onnx

RUNTIMES = ("onnxruntime", "torch")
TABLE_VERSION = 4
TABLE_TIMING = (5, 0.05)  # (rounds, block seconds) per table entry: sub-graphs of a few convs
PLAN_TIMING = (15, 0.2)  # whole plans against the unpruned model: 15 rounds reproduce within a few %


def default_runtime():
    """ONNX Runtime when installed (where users deploy), else PyTorch."""
    return "onnxruntime" if importlib.util.find_spec("onnxruntime") else "torch"


def check_runtime(runtime):
    if runtime not in RUNTIMES:
        raise ValueError(f"--latency-runtime must be one of {', '.join(RUNTIMES)}, not '{runtime}'")
    if runtime == "onnxruntime" and not importlib.util.find_spec("onnxruntime"):
        raise ValueError("--latency-runtime onnxruntime needs the onnxruntime package: pip install onnxruntime")
    return runtime


def fast_width_step(runtime):
    """The width grid latency plans use: 16 for ONNX Runtime on a CPU with AVX-512, 8 otherwise. ONNX Runtime runs
    convolutions in blocks of 16 channels there: measured with yolov5s-cls at 224 px, batch 1, uniform rate 0.3 with
    widths on multiples of 8 took 0.695 of the unpruned latency at 0.526 of its FLOPs, and the same rate rounded to
    multiples of 16, 0.694 at 0.613 (rate 0.6: 0.304 at 0.184 vs 0.312 at 0.205): an odd multiple of 8 costs what
    the next multiple of 16 does."""
    if runtime != "onnxruntime":
        return 8
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return 8
    return 16 if "avx512f" in flags else 8


def check_latency_options(runtime=None, batch=1):
    """(runtime, batch) of --latency-runtime/--latency-batch, checked (one-line ValueError); runtime None: the default."""
    if int(batch) < 1:
        raise ValueError(f"--latency-batch must be at least 1, not {batch}")
    return check_runtime(runtime or default_runtime()), int(batch)


class Runner:
    """Callables that run a module on one runtime, and block timing of several of them."""

    def __init__(self, runtime="onnxruntime", batch=1, device="cpu"):
        self.runtime, self.batch = check_latency_options(runtime, batch)
        self.device = torch.device("cpu" if self.runtime == "onnxruntime" else device)

    @property
    def threads(self):
        return torch.get_num_threads()

    def callable(self, module, inputs, spinning=True):
        """A no-argument function running `module` (eval mode, BatchNorm already folded) on `inputs` (a tuple).
        spinning: ONNX Runtime's default (pool threads spin a while after each run, as deployed); off for many
        sessions timed in turn, which otherwise slow each other by whatever is still spinning."""
        module = module.eval().to(self.device)
        inputs = tuple(x.to(self.device) for x in inputs)
        if self.runtime == "torch":
            def run():
                with torch.inference_mode():
                    module(*inputs)
                if self.device.type == "cuda":
                    torch.cuda.synchronize()
            return run
        import onnxruntime as ort

        names = [f"x{i}" for i in range(len(inputs))]
        buffer = io.BytesIO()
        with torch.no_grad():
            to_onnx(module, inputs, buffer, names)
        options = ort.SessionOptions()
        options.intra_op_num_threads = self.threads
        options.log_severity_level = 3
        if not spinning:
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        session = ort.InferenceSession(buffer.getvalue(), options, providers=["CPUExecutionProvider"])
        feed = {n: x.numpy() for n, x in zip(names, inputs)}
        return lambda: session.run(None, feed)

    @staticmethod
    def fastest(fns, rounds=5, block_seconds=0.05, pause=0.05):
        """Seconds per call of each function: the fastest of `rounds` blocks (each at least 3 calls and about
        `block_seconds`), the order alternating between rounds."""
        counts = []
        for fn in fns:
            fn()  # warm-up: the first run allocates
            t = time.perf_counter()
            fn()
            counts.append(max(3, round(block_seconds / max(time.perf_counter() - t, 1e-6))))
        best = [float("inf")] * len(fns)
        order = list(range(len(fns)))
        for r in range(rounds):
            for i in order if r % 2 == 0 else order[::-1]:
                time.sleep(pause)
                t = time.perf_counter()
                for _ in range(counts[i]):
                    fns[i]()
                best[i] = min(best[i], (time.perf_counter() - t) / counts[i])
        return best


# ------------------------------------------------------------------------------------------------- layers
class ConvLayer(nn.Module):
    """One deployed conv: convolution with bias (BatchNorm folded) and the block's activation."""

    def __init__(self, c_in, c_out, spec):
        super().__init__()
        groups = c_in if spec["depthwise"] else spec["groups"]
        self.conv = nn.Conv2d(c_in, c_out, spec["kernel"], spec["stride"], spec["padding"], groups=groups, bias=True)
        self.act = spec["act"]

    def forward(self, x):
        return self.act(self.conv(x))


def conv_specs(model, tracer, imgsz):
    """{conv name: shape of the conv (kernel, stride, padding, groups, activation, input height/width) and its output
    and input layouts} for every traced conv of `model` (the linear head is left to the whole-plan measurement)."""
    shapes = {}
    hooks = [model.get_submodule(n).conv.register_forward_hook(
        lambda m, i, o, n=n: shapes.__setitem__(n, tuple(i[0].shape[-2:])))
        for n in tracer.inputs if not n.endswith(".linear")]
    with torch.no_grad():
        model(torch.zeros(1, model.yaml.get("ch", 3), imgsz, imgsz, device=next(model.parameters()).device))
    for h in hooks:
        h.remove()
    specs = {}
    for name, layout in tracer.inputs.items():
        if name.endswith(".linear"):
            continue
        block = model.get_submodule(name)
        conv = block.conv
        specs[name] = {"kernel": conv.kernel_size, "stride": conv.stride, "padding": conv.padding,
                       "groups": conv.groups, "depthwise": conv.groups > 1 and conv.groups == conv.in_channels,
                       "act": deepcopy(getattr(block, "act", nn.Identity())).to("cpu"), "hw": shapes[name],
                       "out": tracer.outputs[name], "in": layout}
    return specs


def layer_module(spec, c_in, c_out, batch):
    """(ConvLayer, (input,)) of one conv of `spec` at widths c_in → c_out."""
    return ConvLayer(c_in, c_out, spec), (torch.randn(batch, c_in, *spec["hw"]),)


# (input scale, output scale) of the widths each layer is timed at: uniform plans of rates 1 - scale, so the fit
# sees the input and output widths move together and apart
FIT_POINTS = ((1.0, 1.0), (0.5, 1.0), (1.0, 0.5), (0.5, 0.5), (0.25, 0.25), (0.75, 0.75), (0.1, 0.1))


def fit_layer(points):
    """Least-squares (a, b, c, d) of seconds = a + b·out + c·in + d·in·out over measured (in, out, seconds): the
    convolution's product term, and what scales with its output (activation) or input (reads) alone; plus the
    fastest measured time, below which no prediction goes (a narrow conv is not proportionally faster: without
    this floor the fit promised 0.10 of the unpruned latency for a plan that measured 0.18, and the allocation
    went for such plans)."""
    import numpy as np

    x = np.array([[1.0, o, i, i * o] for i, o, _ in points])
    y = np.array([t for *_, t in points])
    coef, *_ = np.linalg.lstsq(x, y, rcond=None)
    return [float(c) for c in coef] + [float(y.min())]


CALIBRATION_SCALES = (1.0, 0.75, 0.5, 0.25)  # uniform plans timed whole to calibrate the layers' sum


class LatencyTable:
    """Per conv layer, the seconds fitted to measurements at several input/output widths, and a calibration of their
    sum against whole models: a plan's latency is predicted as a + b · (the layers' sum at its widths), with (a, b)
    fitted on uniform plans timed whole (what the layers do not explain: head, pooling, adds, concats, runtime
    overhead, and a layer timed alone reordering its input), as a fraction of the unpruned model's measured time."""

    def __init__(self, full_seconds, layers, calibration=(0.0, 1.0)):
        self.full_seconds = full_seconds
        self.layers = layers  # {conv name: (input layout, output layout, fit coefficients)}
        self.calibration = calibration

    @staticmethod
    def _seconds(coef, c_in, c_out):
        a, b, c, d, floor = coef
        return max(floor, a + b * c_out + c * c_in + d * c_in * c_out)

    def layer_seconds(self, widths, width_of):
        return sum(self._seconds(coef, width_of(lin, widths), width_of(lout, widths))
                   for lin, lout, coef in self.layers.values())

    def fraction(self, plan, costs):
        """Predicted latency of `plan` ({group: width}) as a fraction of the unpruned model's."""
        a, b = self.calibration
        return (a + b * self.layer_seconds(costs.widths(plan), costs.width_of)) / self.full_seconds

    def calibrate(self, sums, measured):
        """Least-squares (a, b) of measured whole-model seconds = a + b · layers' sum; one pair: b = 1."""
        import numpy as np

        if len(sums) < 2:
            self.calibration = (float(measured[0] - sums[0]), 1.0)
        else:
            coef, *_ = np.linalg.lstsq(np.array([[1.0, s] for s in sums]), np.array(measured), rcond=None)
            self.calibration = (float(coef[0]), float(coef[1]))
        return self

    def to_json(self):
        return {"version": TABLE_VERSION, "full_seconds": self.full_seconds, "calibration": list(self.calibration),
                "layers": {n: [lin, lout, coef] for n, (lin, lout, coef) in self.layers.items()}}

    @classmethod
    def from_json(cls, data):
        layout = lambda rows: [(g, int(w)) for g, w in rows]  # noqa: E731  JSON turns tuples into lists
        return cls(data["full_seconds"], {n: (layout(lin), layout(lout), coef)
                                          for n, (lin, lout, coef) in data["layers"].items()},
                   tuple(data["calibration"]))


class PlanLatency:
    """Plans of one architecture timed on one runtime: whole plans against the unpruned model, and the table."""

    def __init__(self, cfg, imgsz=224, nc=None, runtime="onnxruntime", batch=1, device="cpu", cache_dir=None,
                 costs=None):
        from models.costs import CostModel, meta_model

        self.cfg, self.imgsz, self.nc = cfg, imgsz, nc
        self.runner = Runner(runtime, batch, device)
        self.costs = costs or CostModel(cfg, imgsz, nc)  # the caller's, when it has one for the same (cfg, imgsz, nc)
        self.cache_dir = Path(cache_dir) if cache_dir else None
        self.width_step = fast_width_step(self.runner.runtime)  # the grid the allocation snaps widths to
        self.yaml = meta_model(cfg, None, nc).yaml
        self._full = None

    def model(self, plan):
        """The plan's classifier as deployed: random weights (denormals flushed: untrained activations fade into
        denormal floats, which CPUs run very slowly), BatchNorm folded."""
        from models.yolo import ClassificationModel

        torch.set_flush_denormal(True)
        torch.manual_seed(0)
        return ClassificationModel(self.cfg, nc=self.nc, rate=0.0, widths=plan or None).eval().fuse()

    def _whole(self, plan):
        x = torch.randn(self.runner.batch, self.yaml.get("ch", 3), self.imgsz, self.imgsz)
        return self.runner.callable(self.model(plan), (x,))

    def pairs(self, plans):
        """[(unpruned, plan) seconds per forward] of each plan, timed against the unpruned model in its own
        alternating rounds (two sessions alive at a time, as deployed: thread spinning on)."""
        if self._full is None:
            self._full = self._whole({})
        return [self.runner.fastest([self._full, self._whole(plan)], *PLAN_TIMING) for plan in plans]

    def fractions(self, plans):
        """Measured latency of each plan as a fraction of the unpruned model's."""
        return [pruned / full for full, pruned in self.pairs(plans)]

    def key(self):
        """What a table depends on: architecture, image size, runtime (and its version), batch, threads, machine."""
        version = torch.__version__
        if self.runner.runtime == "onnxruntime":
            import onnxruntime

            version = onnxruntime.__version__
        yaml_text = json.dumps({k: v for k, v in self.yaml.items() if k not in ("rate", "widths", "yaml_file")},
                               sort_keys=True, default=str)
        parts = [yaml_text, self.imgsz, self.nc, self.runner.runtime, version, self.runner.batch, self.runner.threads,
                 self.runner.device.type, platform.node(), platform.machine(), platform.processor(), TABLE_VERSION]
        return hashlib.sha256(json.dumps(parts, default=str).encode()).hexdigest()[:16]

    def table(self, log=None):
        """The latency table: read from the cache when one matches, else measured (and cached)."""
        file = self.cache_dir / f"latency-{self.runner.runtime}-b{self.runner.batch}-{self.key()}.json" \
            if self.cache_dir else None
        if file is not None and file.is_file():
            data = json.loads(file.read_text())
            if data.get("version") == TABLE_VERSION:
                if log:
                    log(f"latency table read from {file}")
                return LatencyTable.from_json(data)
        table = self.measure(log)
        if file is not None:
            from utils.atomic import write_text_atomic

            file.parent.mkdir(parents=True, exist_ok=True)
            write_text_atomic(file, json.dumps(table.to_json()))
        return table

    def measure(self, log=None):
        """Time every conv layer alone at the FIT_POINTS widths (interleaved per layer), fit each, and calibrate
        their sum on the CALIBRATION_SCALES uniform plans, each timed whole against the unpruned model."""
        from models.plan import Plan
        from models.graph import trace_model

        t0 = time.time()
        costs = self.costs
        full_model = self.model({})
        specs = conv_specs(full_model, trace_model(full_model), self.imgsz)
        scaled = {s: costs.widths(Plan.uniform(costs.full, 1 - s)) for pair in FIT_POINTS for s in pair}
        layers = {}
        for name, spec in specs.items():
            points = {}  # (in, out) → one measurement each, however many scale pairs give it
            for s_in, s_out in FIT_POINTS:
                c_in, c_out = costs.width_of(spec["in"], scaled[s_in]), costs.width_of(spec["out"], scaled[s_out])
                if spec["depthwise"]:
                    c_in = c_out
                points.setdefault((c_in, c_out), None)
            fns = [self.runner.callable(*layer_module(spec, c_in, c_out, self.runner.batch), spinning=False)
                   for c_in, c_out in points]
            seconds = self.runner.fastest(fns, *TABLE_TIMING)
            layers[name] = (spec["in"], spec["out"], fit_layer([(i, o, t) for (i, o), t in zip(points, seconds)]))
        plans = [Plan.uniform(costs.full, 1 - s) for s in CALIBRATION_SCALES[1:]]  # CALIBRATION_SCALES[0] = 1: unpruned
        pairs = self.pairs(plans)
        full_seconds = min(full for full, _ in pairs)
        measured = [full_seconds * pruned / full for full, pruned in pairs]
        table = LatencyTable(full_seconds, layers)
        table.calibrate([table.layer_seconds(costs.widths(p), costs.width_of) for p in [{}, *plans]],
                        [full_seconds, *measured])
        if log:
            log(f"latency table: {len(layers)} conv layers timed at up to {len(FIT_POINTS)} widths on "
                f"{self.runner.runtime} (batch {self.runner.batch}, {self.runner.threads} threads) in "
                f"{time.time() - t0:.0f} s")
        return table
