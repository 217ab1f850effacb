"""ultralytics' block types (models/ultralytics_blocks.py; YOLOv8, YOLO11, YOLO26): each one's pruning handler and
spec, and the specs of the classes found only inside them or in ultralytics' detection heads."""

from models.blocks.yolov5 import BOTTLENECK, C3_HANDLER, UL_BLOCK, UL_CONV, UL_HEAD, C3Handler
from models.common import C3, Bottleneck
from models.specs import Args, BlockSpec, Handler, register
from models.ultralytics_blocks import C2PSA, Attention, C2f, C3k, C3k2, DetectionHead, DWConv, PSABlock


class C2fHandler(Handler):
    """ultralytics' C2f and C3k2. cv1's output is two halves (separate groups, equal widths): the first goes straight
    to cv2; the second feeds the inner blocks. With residual Bottlenecks the second half and every inner cv2 form the
    stream; C3k inner blocks (C3k2 at the m/l/x scales) are C3s with a group per output. cv2 reads every half and
    inner output, concatenated."""

    @staticmethod
    def _options(s):
        """(shortcut, expansion, c3k, bottleneck expansion) of a C2f's or a C3k2's row."""
        return s.get("shortcut"), s.get("e"), s.get("c3k", False), 0.5 if s.kind is C3k2 else 1.0

    @staticmethod
    def _halves(p, adds):
        return f"{p}.cv1.a", f"{p}.stream" if adds else f"{p}.cv1.b"

    def tied(self, s):
        shortcut, _, c3k, _ = self._options(s)
        return [self._halves(s.prefix, shortcut and not c3k)]

    def groups(self, s):
        p, full = s.prefix, s.c2_full
        shortcut, e, c3k, eb = self._options(s)
        c = int(full * e)
        a, b = self._halves(p, shortcut and not c3k)
        out = {a: c, b: c}
        for j in range(s.n):
            q = f"{p}.m.{j}"
            if c3k:  # a C3k(c, c, 2): hidden int(c * 0.5) throughout, its output c
                stream, inner, outs = C3Handler._names(q, 2, shortcut)
                out.update({g: c // 2 for g in [stream, *inner, *outs, f"{q}.cv2"]}, **{f"{q}.cv3": c})
            else:
                out[f"{q}.cv1"] = int(c * eb)
                if not shortcut:
                    out[f"{q}.cv2"] = c
        return {**out, f"{p}.cv2": full}

    def derived(self, s):
        """ultralytics builds each inner block from the hidden width c: a Bottleneck(c, c, e) (e: 1 in C2f, 0.5 in
        C3k2), a C3k(c, c) whose own hidden is c // 2 throughout."""
        p = s.prefix
        shortcut, _, c3k, eb = self._options(s)
        b = self._halves(p, shortcut and not c3k)[1]
        rules = {}
        for j in range(s.n):
            q = f"{p}.m.{j}"
            if c3k:
                stream, inner, outs = C3Handler._names(q, 2, shortcut)
                rules.update({g: (b, 0.5) for g in [stream, *inner, *outs, f"{q}.cv2"]}, **{f"{q}.cv3": (b, 1.0)})
            else:
                rules[f"{q}.cv1"] = (b, eb)
                if not shortcut:
                    rules[f"{q}.cv2"] = (b, 1.0)
        return rules

    def build(self, s, w):
        p = s.prefix
        shortcut, e, c3k, _ = self._options(s)
        a, b = self._halves(p, shortcut and not c3k)
        g = s.get("groups", 1)
        blocks, prev = [], w[b]
        for j in range(s.n):
            q = f"{p}.m.{j}"
            if c3k:
                stream, inner, outs = C3Handler._names(q, 2, shortcut)
                blocks.append(C3k(prev, w[f"{q}.cv3"], 2, shortcut, g, c_=w[stream], cv2_=w[f"{q}.cv2"],
                                  m_=[(w[h], w[o]) for h, o in zip(inner, outs)]))
                prev = w[f"{q}.cv3"]
            else:
                c2 = prev if shortcut else w[f"{q}.cv2"]
                blocks.append(Bottleneck(prev, c2, shortcut, g, c_=w[f"{q}.cv1"], k=(3, 3)))
                prev = c2
        c2 = w[f"{p}.cv2"]
        if s.kind is C3k2:
            block = C3k2(s.c1, c2, s.n, c3k, e, s.get("attn", False), g, shortcut, c_=w[a], m=blocks)
        else:
            block = C2f(s.c1, c2, s.n, shortcut, g, e, c_=w[a], m=blocks)
        return block, c2, s.c2_full, None

    def trace(self, t, p, m, layout):
        t.inputs[f"{p}.cv1"] = layout
        first = m.m[0]
        a, b = t.split(f"{p}.cv1", m.cv1, self._halves(p, isinstance(first, Bottleneck) and first.add))
        outs, y = [a, b], b
        for j, block in enumerate(m.m):
            y = (C3_HANDLER if isinstance(block, C3) else BOTTLENECK).trace(t, f"{p}.m.{j}", block, y)
            outs.append(y)
        return t.conv(f"{p}.cv2", m.cv2, [seg for o in outs for seg in o])


class C2PSAHandler(Handler):
    """ultralytics' C2PSA: cv1's halves and the attention stream (the second half plus every added attention and
    feed-forward output) are fixed, because the attention's view of its input ties the stream's width to its heads;
    each PSABlock's feed-forward hidden width and cv2's output are pruned."""

    def groups(self, s):
        full = s.c2_full
        c = int(full * s.get("e"))
        return {**{f"{s.prefix}.m.{j}.ffn.0": 2 * c for j in range(s.n)}, f"{s.prefix}.cv2": full}

    def yaml_derived(self, s):
        return [f"{s.prefix}.m.{j}.ffn.0" for j in range(s.n)]  # ultralytics' PSABlock: feed-forward 2c wide

    def derived(self, s):
        return {f"{s.prefix}.cv2": (None, 1.0)}  # ultralytics' C2PSA asserts its output width equals its input's

    def build(self, s, w):
        p, full = s.prefix, s.c2_full
        e = s.get("e")
        block = C2PSA(s.c1, w[f"{p}.cv2"], s.n, e, c_=int(full * e), ffn_=[w[f"{p}.m.{j}.ffn.0"] for j in range(s.n)])
        return block, w[f"{p}.cv2"], full, None

    def trace(self, t, p, m, layout):
        t.inputs[f"{p}.cv1"] = layout
        a, stream = t.split(f"{p}.cv1", m.cv1, [f"{p}.cv1.a", f"{p}.stream"], fixed=True)
        for j, block in enumerate(m.m):
            q = f"{p}.m.{j}"
            attn = block.attn
            t.conv(f"{q}.attn.qkv", attn.qkv, stream, fixed=True)
            dim = attn.pe.conv.out_channels
            v = t.conv(f"{q}.attn.pe", attn.pe, [(None, dim)], fixed=True)  # depthwise over the values: fixed channels
            t.inputs[f"{q}.attn.proj"] = v
            t.join(stream, f"{q}.attn.proj", attn.proj, q)
            hidden = t.conv(f"{q}.ffn.0", block.ffn[0], stream, fixed=t.ultralytics_plan)
            t.inputs[f"{q}.ffn.1"] = hidden
            t.join(stream, f"{q}.ffn.1", block.ffn[1], q)
        return t.conv(f"{p}.cv2", m.cv2, a + stream)


def c3k_at_large_scales(args, d):
    """ultralytics' rule: C3k2's inner blocks are C3ks at the m, l and x scales, whatever the row says."""
    if d.get("scale") in ("m", "l", "x"):
        args[1:2] = [True]
    return args


def ratio(hidden, c2):
    """An `e` with int(c2 * e) == hidden, as ultralytics computes a block's hidden width."""
    e = hidden / c2
    return e if int(c2 * e) == hidden else (hidden + 0.5) / c2


def c2f_row(layer, n, args):
    """ultralytics' YAML row of a built C2f: C2f(c1, c2, n, shortcut, g, e) at its widths and repeats."""
    c2 = layer.cv2.conv.out_channels
    shortcut = args[1] if len(args) > 1 else False
    g = args[2] if len(args) > 2 else 1
    return len(layer.m), [c2, shortcut, g, ratio(layer.c, c2)]


def c3k2_row(layer, n, args):
    """ultralytics' YAML row of a built C3k2: C3k2(c1, c2, n, c3k, e, attn, g, shortcut), c3k said per row."""
    c2 = layer.cv2.conv.out_channels
    return len(layer.m), [c2, isinstance(layer.m[0], C3k), ratio(layer.c, c2), *args[3:]]


def c2psa_row(layer, n, args):
    """ultralytics' YAML row of a built C2PSA: C2PSA(c1, c2, n, e), e of its input (which must equal its output)."""
    return len(layer.m), [layer.cv2.conv.out_channels, ratio(layer.c, layer.cv1.conv.in_channels)]


C2F_HANDLER = C2fHandler()
# Heads (and blocks found only inside them) load as DetectionHead: their weights are read, never run.
HEADS = tuple(UL_HEAD + h for h in ("Detect", "Segment", "Pose", "OBB", "Segment26", "Pose26", "OBB26"))
HEAD_BLOCKS = tuple(UL_BLOCK + b for b in ("DFL", "Proto", "Proto26", "RealNVP"))

C2F = register(BlockSpec(C2f, ("C2f",), Args(shortcut=1, groups=2, e=3, defaults={"shortcut": False, "e": 0.5}),
                         C2F_HANDLER, repeats_inside=True, ultralytics=UL_BLOCK + "C2f", ultralytics_row=c2f_row))
C3K2 = register(BlockSpec(C3k2, ("C3k2",), Args(c3k=1, e=2, attn=3, groups=4, shortcut=5,
                                                defaults={"shortcut": True, "e": 0.5}),
                          C2F_HANDLER, repeats_inside=True, scale=c3k_at_large_scales, ultralytics=UL_BLOCK + "C3k2",
                          ultralytics_row=c3k2_row))
C2PSA_SPEC = register(BlockSpec(C2PSA, ("C2PSA",), Args(e=1, defaults={"e": 0.5}), C2PSAHandler(),
                                repeats_inside=True, ultralytics=UL_BLOCK + "C2PSA", ultralytics_row=c2psa_row))
INNER = [register(BlockSpec(cls, ultralytics=UL_BLOCK + cls.__name__)) for cls in (C3k, PSABlock, Attention)]
DWCONV = register(BlockSpec(DWConv, ultralytics=UL_CONV + "DWConv"))  # in ultralytics' detection heads
DETECTION_HEAD = register(BlockSpec(DetectionHead, stands_in_for=HEADS + HEAD_BLOCKS))
