"""YOLOv5 building blocks with upstream's class and attribute names.

State-dict keys and pickled attributes match Ultralytics YOLOv5, so upstream checkpoints map onto these
classes one-to-one. Inner widths are plain constructor arguments (`c_`), so a pruned model is built from
the same classes with smaller numbers.
"""

import torch
import torch.nn as nn


def autopad(k, p=None, d=1):
    """'Same' padding for kernel k with dilation d."""
    if d > 1:
        k = d * (k - 1) + 1 if isinstance(k, int) else [d * (x - 1) + 1 for x in k]
    if p is None:
        p = k // 2 if isinstance(k, int) else [x // 2 for x in k]
    return p


class Conv(nn.Module):
    """Conv2d → BatchNorm2d → SiLU."""

    default_act = nn.SiLU()

    def __init__(self, c1, c2, k=1, s=1, p=None, g=1, d=1, act=True):
        super().__init__()
        self.conv = nn.Conv2d(c1, c2, k, s, autopad(k, p, d), groups=g, dilation=d, bias=False)
        self.bn = nn.BatchNorm2d(c2)
        self.act = self.default_act if act is True else act if isinstance(act, nn.Module) else nn.Identity()

    def forward(self, x):
        return self.act(self.bn(self.conv(x)))

    def forward_fuse(self, x):
        return self.act(self.conv(x))


class Bottleneck(nn.Module):
    """cv1 (k[0]) → cv2 (k[1]), added to the input when shapes allow; YOLOv5's is 1x1 → 3x3, ultralytics' C2f/C3k
    use 3x3 → 3x3."""

    def __init__(self, c1, c2, shortcut=True, g=1, e=0.5, c_=None, k=(1, 3)):
        super().__init__()
        c_ = int(c2 * e) if c_ is None else c_
        self.cv1 = Conv(c1, c_, k[0], 1)
        self.cv2 = Conv(c_, c2, k[1], 1, g=g)
        self.add = shortcut and c1 == c2

    def forward(self, x):
        return x + self.cv2(self.cv1(x)) if self.add else self.cv2(self.cv1(x))


class C3(nn.Module):
    """CSP bottleneck with 3 convolutions; `c_` overrides the hidden width int(c2 * e).

    A pruning plan may give cv2 its own width (`cv2_`, default c_) and each bottleneck its own (hidden, output)
    widths (`m_`, default (c_, c_) each); an added bottleneck's output must stay c_.
    """

    def __init__(self, c1, c2, n=1, shortcut=True, g=1, e=0.5, c_=None, cv2_=None, m_=None, k=(1, 3)):
        super().__init__()
        c_ = int(c2 * e) if c_ is None else c_
        cv2_ = c_ if cv2_ is None else cv2_
        m_ = list(m_) if m_ else [(c_, c_)] * n
        ins = [c_] + [out for _, out in m_[:-1]]  # each bottleneck reads the previous one's output
        self.cv1 = Conv(c1, c_, 1, 1)
        self.cv2 = Conv(c1, cv2_, 1, 1)
        self.cv3 = Conv(m_[-1][1] + cv2_, c2, 1)
        self.m = nn.Sequential(*(Bottleneck(i, o, shortcut, g, c_=h, k=k) for i, (h, o) in zip(ins, m_)))

    def forward(self, x):
        return self.cv3(torch.cat((self.m(self.cv1(x)), self.cv2(x)), 1))


class Focus(nn.Module):
    """YOLOv5 ≤ v5.0's stem: space-to-depth (each 2x2 pixel block → 4 channels), then a Conv."""

    def __init__(self, c1, c2, k=1, s=1, p=None, g=1, act=True):
        super().__init__()
        self.conv = Conv(c1 * 4, c2, k, s, p, g, act=act)

    def forward(self, x):
        return self.conv(torch.cat((x[..., ::2, ::2], x[..., 1::2, ::2], x[..., ::2, 1::2], x[..., 1::2, 1::2]), 1))


class SPP(nn.Module):
    """YOLOv5 ≤ v5.0's spatial pyramid pooling: parallel max-pools of kernels k, concatenated with their input."""

    def __init__(self, c1, c2, k=(5, 9, 13), c_=None):
        super().__init__()
        c_ = c1 // 2 if c_ is None else c_
        self.cv1 = Conv(c1, c_, 1, 1)
        self.cv2 = Conv(c_ * (len(k) + 1), c2, 1, 1)
        self.m = nn.ModuleList([nn.MaxPool2d(kernel_size=x, stride=1, padding=x // 2) for x in k])

    def forward(self, x):
        x = self.cv1(x)
        return self.cv2(torch.cat([x] + [m(x) for m in self.m], 1))


class SPPF(nn.Module):
    """Spatial pyramid pooling, fast: n chained max-pools (3 in YOLOv5) concatenated with their input. YOLO26's adds
    the block's input to its output (shortcut) and leaves cv1 unactivated (act1=False)."""

    def __init__(self, c1, c2, k=5, n=3, shortcut=False, c_=None, act1=True):
        super().__init__()
        c_ = c1 // 2 if c_ is None else c_
        self.cv1 = Conv(c1, c_, 1, 1, act=act1)
        self.cv2 = Conv(c_ * (n + 1), c2, 1, 1)
        self.m = nn.MaxPool2d(kernel_size=k, stride=1, padding=k // 2)
        self.n = n
        self.add = shortcut and c1 == c2

    def forward(self, x):
        y = [self.cv1(x)]
        y.extend(self.m(y[-1]) for _ in range(getattr(self, "n", 3)))  # YOLOv5's pickles carry no n: 3
        out = self.cv2(torch.cat(y, 1))
        return out + x if getattr(self, "add", False) else out


class Concat(nn.Module):
    """Concatenate a list of tensors along a dimension."""

    def __init__(self, dimension=1):
        super().__init__()
        self.d = dimension

    def forward(self, x):
        return torch.cat(x, self.d)


CLASSIFY_HIDDEN = 1280  # Classify's hidden conv width (efficientnet_b0 size), the prunable part of the head


class Classify(nn.Module):
    """Classification head: Conv(c1 → c_) → global average pool → dropout → Linear(c_ → c2)."""

    def __init__(self, c1, c2, k=1, s=1, p=None, g=1, dropout_p=0.0, c_=CLASSIFY_HIDDEN):
        super().__init__()
        self.conv = Conv(c1, c_, k, s, autopad(k, p), g)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.drop = nn.Dropout(p=dropout_p, inplace=True)
        self.linear = nn.Linear(c_, c2)

    def forward(self, x):
        if isinstance(x, list):
            x = torch.cat(x, 1)
        return self.linear(self.drop(self.pool(self.conv(x)).flatten(1)))
