"""YOLOv5's block types (models/common.py): each one's pruning handler and spec.

Handlers answer for a built block which conv outputs form a channel group and how each conv's input is laid out from
its producers (models/graph.py's docstring has the vocabulary); specs add the YAML name, argument schema and
pickled names.
"""

import torch.nn as nn

from models.common import C3, CLASSIFY_HIDDEN, SPP, SPPF, Bottleneck, Classify, Concat, Conv, Focus
from models.specs import Args, BlockSpec, Handler, register

UL_CONV, UL_BLOCK, UL_HEAD = (f"ultralytics.nn.modules.{m}." for m in ("conv", "block", "head"))  # pickled names


class ConvHandler(Handler):
    """One group: the conv's output."""

    def groups(self, s):
        return {s.prefix: s.c2_full}

    def build(self, s, w):
        full, c2 = s.c2_full, w[s.prefix]
        return Conv(s.c1, c2, *s.args[1:]), c2, full, None

    def trace(self, t, p, m, layout):
        return t.conv(p, m, layout)


class C3Handler(Handler):
    """cv1 and every added m[i].cv2 form the residual stream; each m[i].cv1, cv2, cv3 is its own group; cv3
    reads cat(last bottleneck's output, cv2)."""

    @staticmethod
    def _names(p, n, shortcut):
        stream = f"{p}.stream" if shortcut else f"{p}.cv1"
        outs = [stream] * n if shortcut else [f"{p}.m.{j}.cv2" for j in range(n)]
        return stream, [f"{p}.m.{j}.cv1" for j in range(n)], outs

    def groups(self, s):
        full = s.c2_full
        hidden = int(full * s.get("e"))
        stream, inner, outs = self._names(s.prefix, s.n, s.get("shortcut"))
        return {stream: hidden, **{g: hidden for g in inner + outs}, f"{s.prefix}.cv2": hidden,
                f"{s.prefix}.cv3": full}

    def build(self, s, w):
        p, full = s.prefix, s.c2_full
        stream, inner, outs = self._names(p, s.n, s.get("shortcut"))
        c2 = w[f"{p}.cv3"]
        block = C3(s.c1, c2, s.n, *s.args[1:], c_=w[stream], cv2_=w[f"{p}.cv2"],
                   m_=[(w[h], w[o]) for h, o in zip(inner, outs)])
        return block, c2, full, None

    def trace(self, t, p, m, layout):
        t.inputs[f"{p}.cv1"] = t.inputs[f"{p}.cv2"] = layout
        stream = t.new_group(f"{p}.stream" if any(b.add for b in m.m) else f"{p}.cv1", f"{p}.cv1", m.cv1)
        for j, b in enumerate(m.m):
            stream = BOTTLENECK.trace(t, f"{p}.m.{j}", b, stream)
        side = t.new_group(f"{p}.cv2", f"{p}.cv2", m.cv2)
        return t.conv(f"{p}.cv3", m.cv3, stream + side)


class BottleneckHandler(Handler):
    """cv1 is its own group; a residual Bottleneck's cv2 joins its input's group (the add), else its own."""

    @staticmethod
    def _adds(s):
        return s.get("shortcut") and s.c1_full == s.c2_full

    def groups(self, s):
        full = s.c2_full
        out = {} if self._adds(s) else {f"{s.prefix}.cv2": full}
        return {f"{s.prefix}.cv1": int(full * s.get("e")), **out}

    def build(self, s, w):
        full = s.c2_full
        c2 = s.c1 if self._adds(s) else w[f"{s.prefix}.cv2"]  # the add keeps its input's channels
        return Bottleneck(s.c1, c2, *s.args[1:], c_=w[f"{s.prefix}.cv1"]), c2, full, None

    def trace(self, t, p, m, layout):
        hidden = t.conv(f"{p}.cv1", m.cv1, layout)
        t.inputs[f"{p}.cv2"] = hidden
        if m.add:
            return t.join(layout, f"{p}.cv2", m.cv2, p)
        return t.new_group(f"{p}.cv2", f"{p}.cv2", m.cv2)


class FocusHandler(ConvHandler):
    """YOLOv5 <= v5.0's stem: one group, its output; the conv reads four space-to-depth copies of the input."""

    def build(self, s, w):
        full, c2 = s.c2_full, w[s.prefix]
        return Focus(s.c1, c2, *s.args[1:]), c2, full, None

    def trace(self, t, p, m, layout):
        return t.conv(f"{p}.conv", m.conv, layout * 4, group_name=p)


class SPPFHandler(Handler):
    """cv1 (half the unpruned input, then pruned) and cv2 are groups; cv2 reads cat(cv1's output, one max-pool of
    it per pool): n + 1 copies for SPPF, len(k) + 1 for SPP. A residual SPPF (YOLO26's shortcut) adds its input to
    cv2's output: cv2 joins its input's group."""

    @staticmethod
    def _adds(s):
        return s.get("shortcut") and s.c1_full == s.c2_full

    def groups(self, s):
        out = {} if self._adds(s) else {f"{s.prefix}.cv2": s.c2_full}
        return {f"{s.prefix}.cv1": s.c1_full // 2, **out}

    def build(self, s, w):
        c2 = s.c1 if self._adds(s) else w[f"{s.prefix}.cv2"]
        act1 = not (s.ultralytics and len(s.args) > 2)  # ultralytics leaves cv1 unactivated but in legacy YAML rows
        block = SPPF(s.c1, c2, s.get("k"), s.get("n"), s.get("shortcut"), c_=w[f"{s.prefix}.cv1"], act1=act1)
        return block, c2, s.c2_full, None

    def trace(self, t, p, m, layout):
        hidden = t.conv(f"{p}.cv1", m.cv1, layout)
        t.inputs[f"{p}.cv2"] = hidden * (getattr(m, "n", 3) + 1)
        if getattr(m, "add", False):
            return t.join(layout, f"{p}.cv2", m.cv2, p)
        return t.new_group(f"{p}.cv2", f"{p}.cv2", m.cv2)


class SPPHandler(SPPFHandler):
    @staticmethod
    def _adds(s):
        return False

    def build(self, s, w):
        c2 = w[f"{s.prefix}.cv2"]
        return SPP(s.c1, c2, *s.args[1:], c_=w[f"{s.prefix}.cv1"]), c2, s.c2_full, None

    def trace(self, t, p, m, layout):
        hidden = t.conv(f"{p}.cv1", m.cv1, layout)
        return t.conv(f"{p}.cv2", m.cv2, hidden * (len(m.m) + 1))


class ClassifyHandler(Handler):
    """The 1280-wide hidden conv is a group; the linear's outputs (the classes) are never pruned."""

    def groups(self, s):
        return {f"{s.prefix}.conv": CLASSIFY_HIDDEN}

    def yaml_derived(self, s):
        return [f"{s.prefix}.conv"]  # ultralytics' Classify is 1280 wide, whatever its YAML says

    def build(self, s, w):
        c_ = w[f"{s.prefix}.conv"]
        c2 = s.args[0]
        return Classify(s.c1, *s.args, c_=c_), c2, c2, (c_, CLASSIFY_HIDDEN)  # report the hidden conv

    def trace(self, t, p, m, layout):
        hidden = t.conv(f"{p}.conv", m.conv, layout, fixed=t.ultralytics_plan)
        t.inputs[f"{p}.linear"] = hidden
        return []


def concat_outputs(args, f, ch, ch_full):
    """Concat: its inputs' widths, summed."""
    return args, sum(ch[x] for x in f), sum(ch_full[x] for x in f)


def conv_row(layer, n, args):
    """ultralytics' YAML row of a built Conv: its output width written out."""
    return n, [layer.conv.out_channels, *args[1:]]


def classify_row(layer, n, args):
    """ultralytics' YAML row of a Classify: nc; its 1280 is fixed in ultralytics (the export's rebuild checks it)."""
    return n, list(args)


def yolov5_names(cls):
    return (f"models.common.{cls.__name__}",)  # upstream YOLOv5 pickles its blocks from models/common.py


BOTTLENECK, C3_HANDLER = BottleneckHandler(), C3Handler()
CONV_ARGS = Args(k=1, s=2, p=3, groups=4)  # [c2, k, s, p, g, ...]
CSP_ARGS = Args(shortcut=1, groups=2, e=3, defaults={"shortcut": True, "e": 0.5})  # [c2, shortcut, g, e]

CONV = register(BlockSpec(Conv, ("Conv",), CONV_ARGS, ConvHandler(), yolov5=yolov5_names(Conv),
                          ultralytics=UL_CONV + "Conv", ultralytics_row=conv_row))
FOCUS = register(BlockSpec(Focus, ("Focus",), CONV_ARGS, FocusHandler(), yolov5=yolov5_names(Focus)))
BOTTLENECK_SPEC = register(BlockSpec(Bottleneck, ("Bottleneck",), CSP_ARGS, BOTTLENECK,
                                     yolov5=yolov5_names(Bottleneck), ultralytics=UL_BLOCK + "Bottleneck"))
C3_SPEC = register(BlockSpec(C3, ("C3",), CSP_ARGS, C3_HANDLER, repeats_inside=True,
                             grouped_reads_input=False, yolov5=yolov5_names(C3), ultralytics=UL_BLOCK + "C3"))
SPPF_ARGS = Args(k=1, n=2, shortcut=3, defaults={"k": 5, "n": 3, "shortcut": False})  # [c2, k, n, shortcut]
SPPF_SPEC = register(BlockSpec(SPPF, ("SPPF",), SPPF_ARGS, SPPFHandler(), yolov5=yolov5_names(SPPF),
                               ultralytics=UL_BLOCK + "SPPF"))
SPP_SPEC = register(BlockSpec(SPP, ("SPP",), Args(k=1), SPPHandler(), yolov5=yolov5_names(SPP),
                              ultralytics=UL_BLOCK + "SPP"))
CLASSIFY = register(BlockSpec(Classify, ("Classify",), CONV_ARGS, ClassifyHandler(), yolov5=yolov5_names(Classify),
                              ultralytics=UL_HEAD + "Classify", ultralytics_row=classify_row))
CONCAT = register(BlockSpec(Concat, ("Concat",), outputs=concat_outputs, yolov5=yolov5_names(Concat),
                            ultralytics=UL_CONV + "Concat"))
UPSAMPLE = register(BlockSpec(nn.Upsample, ("nn.Upsample", "Upsample")))  # torch's: unpickled as torch.nn's own
