"""ultralytics' YOLOv8 / YOLO11 / YOLO26 building blocks, written here with ultralytics' class and attribute names.

State-dict keys and pickled attributes match the `ultralytics` package, so its checkpoints unpickle onto these
classes (through the restricted loader) and `export.py --include ultralytics` can hand a pruned model back to it.
As in models/common.py, inner widths are constructor arguments, so a pruned block is built from the same classes
with smaller numbers. Conv, Bottleneck, C3, SPPF, Concat and Classify are shared with YOLOv5 (models/common.py).
"""

import torch
import torch.nn as nn

from models.common import C3, Bottleneck, Conv


def output_channels(block):
    """Output width of an inner block of a C2f/C3k2: a Bottleneck's cv2 or a C3k's cv3."""
    return (block.cv3 if hasattr(block, "cv3") else block.cv2).conv.out_channels


class C2f(nn.Module):
    """cv1 → two halves (chunk); the second half runs through the inner blocks, each output kept; cv2 reads all.

    `c_` overrides the half width int(c2 * e) (both halves keep it: ultralytics' forward chunks cv1's output in two
    equal parts); `m` gives the inner blocks ready-built (a pruning plan's widths), else n Bottlenecks.
    """

    def __init__(self, c1, c2, n=1, shortcut=False, g=1, e=0.5, c_=None, m=None):
        super().__init__()
        self.c = int(c2 * e) if c_ is None else c_
        blocks = m if m is not None else [Bottleneck(self.c, self.c, shortcut, g, e=1.0, k=(3, 3)) for _ in range(n)]
        self.cv1 = Conv(c1, 2 * self.c, 1, 1)
        self.cv2 = Conv(2 * self.c + sum(output_channels(b) for b in blocks), c2, 1)
        self.m = nn.ModuleList(blocks)

    def forward(self, x):
        y = list(self.cv1(x).chunk(2, 1))
        y.extend(m(y[-1]) for m in self.m)
        return self.cv2(torch.cat(y, 1))


class C3k(C3):
    """A C3 whose Bottlenecks use k x k kernels for both convs (YOLO11's inner block)."""

    def __init__(self, c1, c2, n=1, shortcut=True, g=1, e=0.5, k=3, **widths):
        super().__init__(c1, c2, n, shortcut, g, e, k=(k, k), **widths)


class C3k2(C2f):
    """YOLO11/YOLO26's C2f: inner blocks are C3k (c3k=True, the m/l/x scales) or Bottlenecks of half width."""

    def __init__(self, c1, c2, n=1, c3k=False, e=0.5, attn=False, g=1, shortcut=True, c_=None, m=None):
        if attn:
            raise ValueError("C3k2 with attention (attn=True) is not supported: only YOLO26's detection neck uses it")
        c = int(c2 * e) if c_ is None else c_
        if m is None:
            m = [C3k(c, c, 2, shortcut, g) if c3k else Bottleneck(c, c, shortcut, g, e=0.5, k=(3, 3)) for _ in range(n)]
        super().__init__(c1, c2, n, shortcut, g, e, c_=c, m=m)


class Attention(nn.Module):
    """Multi-head self-attention over the pixels of a map, with a depthwise positional conv on the values."""

    def __init__(self, dim, num_heads=8, attn_ratio=0.5):
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.key_dim = int(self.head_dim * attn_ratio)
        self.scale = self.key_dim**-0.5
        self.qkv = Conv(dim, dim + 2 * self.key_dim * num_heads, 1, act=False)
        self.proj = Conv(dim, dim, 1, act=False)
        self.pe = Conv(dim, dim, 3, 1, g=dim, act=False)

    def forward(self, x):
        b, c, h, w = x.shape
        q, k, v = self.qkv(x).view(b, self.num_heads, self.key_dim * 2 + self.head_dim, h * w).split(
            [self.key_dim, self.key_dim, self.head_dim], dim=2)
        attn = ((q * self.scale).transpose(-2, -1) @ k).softmax(dim=-1)
        x = (v @ attn.transpose(-2, -1)).view(b, c, h, w) + self.pe(v.reshape(b, c, h, w))
        return self.proj(x)


class PSABlock(nn.Module):
    """Attention then a 1x1 feed-forward pair, each added to its input; `c_` is the feed-forward's hidden width."""

    def __init__(self, c, attn_ratio=0.5, num_heads=4, shortcut=True, c_=None):
        super().__init__()
        c_ = 2 * c if c_ is None else c_
        self.attn = Attention(c, attn_ratio=attn_ratio, num_heads=num_heads)
        self.ffn = nn.Sequential(Conv(c, c_, 1), Conv(c_, c, 1, act=False))
        self.add = shortcut

    def forward(self, x):
        x = x + self.attn(x) if self.add else self.attn(x)
        return x + self.ffn(x) if self.add else self.ffn(x)


class C2PSA(nn.Module):
    """cv1 → two halves (split); the second runs through n PSABlocks; cv2 reads both. `c_` overrides the half width
    int(c1 * e), `ffn_` the PSABlocks' feed-forward widths; the output width c2 may differ from c1 once pruned."""

    def __init__(self, c1, c2, n=1, e=0.5, c_=None, ffn_=None):
        super().__init__()
        self.c = int(c1 * e) if c_ is None else c_
        ffn_ = list(ffn_) if ffn_ else [2 * self.c] * n
        self.cv1 = Conv(c1, 2 * self.c, 1, 1)
        self.cv2 = Conv(2 * self.c, c2, 1)
        self.m = nn.Sequential(*(PSABlock(self.c, 0.5, max(self.c // 64, 1), c_=h) for h in ffn_))

    def forward(self, x):
        a, b = self.cv1(x).split((self.c, self.c), dim=1)
        return self.cv2(torch.cat((a, self.m(b)), 1))


class DWConv(Conv):
    """Depthwise Conv (groups = gcd(c1, c2)): in ultralytics' detection heads."""

    def __init__(self, c1, c2, k=1, s=1, d=1, act=True):
        import math

        super().__init__(c1, c2, k, s, g=math.gcd(c1, c2), d=d, act=act)


class DetectionHead(nn.Module):
    """Stands in for ultralytics' detection heads (Detect, its DFL, ...) when a detector checkpoint is read: it holds
    their weights so the file loads; only the backbone is used here."""

    def forward(self, x):
        raise NotImplementedError("ultralytics detection heads are not run by this project: only their backbone is used")
