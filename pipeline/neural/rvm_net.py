"""Robust Video Matting (Lin et al., WACV 2022), MobileNetV3-Large variant.

Written from the published architecture so that the released ``rvm_mobilenetv3.pth``
(GPL-3.0, PeterL1n/RobustVideoMatting) loads with ``strict=True``: module and parameter
names follow the original layout.

- ``backbone``: torchvision's MobileNetV3-Large feature stack (``features.0`` .. ``features.16``;
  the last stage dilated instead of strided, so the deepest features are at 1/16), ImageNet
  normalisation inside; returns the features at 1/2, 1/4, 1/8 and 1/16.
- ``aspp``: LR-ASPP (a 1x1 conv branch gated by a global-pool sigmoid branch).
- ``decoder``: a bottleneck ConvGRU at 1/16, three upsampling blocks with ConvGRUs (1/8, 1/4,
  1/2) and an output block at the network's input size. The four GRU hidden states are the
  recurrent state ``r1 .. r4`` carried from frame to frame.
- ``project_mat`` (foreground residual + alpha), ``project_seg`` (segmentation pass, unused
  here but part of the checkpoint), ``refiner`` (deep guided filter that brings the
  low-resolution prediction back to the full frame when ``downsample_ratio < 1``).

``forward(src, r1, r2, r3, r4, downsample_ratio) -> (fgr, pha, r1o, r2o, r3o, r4o)`` on
single frames ``B x 3 x H x W`` in [0, 1], like the released ONNX model: the initial
recurrent states may be zeros of shape ``[1, 1, 1, 1]`` (broadcast), ``downsample_ratio``
a float or a float32 tensor of shape ``[1]``. In an ONNX export the ratio stays a runtime
input (one ``Resize`` with scales built from it) and the refiner always runs.

No torchvision: its wheels do not match this torch build.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn import functional as F

log = logging.getLogger(__name__)

# (input, kernel, expanded, output, squeeze-excite, activation, stride, dilation): torchvision's
# InvertedResidualConfig rows of RVM's MobileNetV3-Large encoder (width multiplier 1)
MOBILENET_V3_LARGE: tuple[tuple[int, int, int, int, bool, str, int, int], ...] = (
    (16, 3, 16, 16, False, "RE", 1, 1),
    (16, 3, 64, 24, False, "RE", 2, 1),  # -> f1 taken before this block (1/2)
    (24, 3, 72, 24, False, "RE", 1, 1),
    (24, 5, 72, 40, True, "RE", 2, 1),  # f2 (1/4) before
    (40, 5, 120, 40, True, "RE", 1, 1),
    (40, 5, 120, 40, True, "RE", 1, 1),
    (40, 3, 240, 80, False, "HS", 2, 1),  # f3 (1/8) before
    (80, 3, 200, 80, False, "HS", 1, 1),
    (80, 3, 184, 80, False, "HS", 1, 1),
    (80, 3, 184, 80, False, "HS", 1, 1),
    (80, 3, 480, 112, True, "HS", 1, 1),
    (112, 3, 672, 112, True, "HS", 1, 1),
    (112, 5, 672, 160, True, "HS", 2, 2),  # dilated: stays at 1/16
    (160, 5, 960, 160, True, "HS", 1, 2),
    (160, 5, 960, 160, True, "HS", 1, 2),
)
FEATURE_CHANNELS = (16, 24, 40, 128)  # f1, f2, f3 and the LR-ASPP output
DECODER_CHANNELS = (80, 40, 32, 16)
STATE_CHANNELS = (16, 20, 40, 64)  # r1 .. r4: half of each GRU block's channels
STATE_STRIDES = (2, 4, 8, 16)  # r1 .. r4 relative to the downsampled input
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def make_divisible(v: float, divisor: int = 8) -> int:
    """torchvision's channel rounding (squeeze-excite widths): nearest multiple of
    ``divisor``, never more than 10 % below ``v``."""
    new_v = max(divisor, int(v + divisor / 2) // divisor * divisor)
    if new_v < 0.9 * v:
        new_v += divisor
    return new_v


def _act(kind: str | None) -> nn.Module | None:
    return {"RE": nn.ReLU(inplace=True), "HS": nn.Hardswish(inplace=True), None: None}[kind]


class ConvBNAct(nn.Sequential):
    """conv (no bias) -> BatchNorm (MobileNetV3's eps 1e-3) -> optional activation;
    children ``0``, ``1``, ``2`` like torchvision's Conv2dNormActivation."""

    def __init__(
        self, cin: int, cout: int, k: int, stride: int = 1, groups: int = 1, dilation: int = 1, act: str | None = "RE"
    ) -> None:
        layers: list[nn.Module] = [
            nn.Conv2d(cin, cout, k, stride, (k - 1) // 2 * dilation, dilation=dilation, groups=groups, bias=False),
            nn.BatchNorm2d(cout, eps=0.001, momentum=0.01),
        ]
        a = _act(act)
        if a is not None:
            layers.append(a)
        super().__init__(*layers)


class SqueezeExcite(nn.Module):
    """Channel gate: global pool -> fc1 -> ReLU -> fc2 -> hard sigmoid, times the input."""

    def __init__(self, channels: int, squeeze: int) -> None:
        super().__init__()
        self.fc1 = nn.Conv2d(channels, squeeze, 1)
        self.fc2 = nn.Conv2d(squeeze, channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        s = F.adaptive_avg_pool2d(x, 1)
        s = F.hardsigmoid(self.fc2(F.relu(self.fc1(s))))
        return x * s


class InvertedResidual(nn.Module):
    """MobileNetV3 block: [expand 1x1] -> depthwise kxk -> [SE] -> project 1x1 (+ skip)."""

    def __init__(self, cin: int, k: int, exp: int, cout: int, se: bool, act: str, stride: int, dilation: int) -> None:
        super().__init__()
        self.residual = stride == 1 and cin == cout
        layers: list[nn.Module] = []
        if exp != cin:
            layers.append(ConvBNAct(cin, exp, 1, act=act))
        layers.append(ConvBNAct(exp, exp, k, 1 if dilation > 1 else stride, groups=exp, dilation=dilation, act=act))
        if se:
            layers.append(SqueezeExcite(exp, make_divisible(exp // 4)))
        layers.append(ConvBNAct(exp, cout, 1, act=None))
        self.block = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        y = self.block(x)
        return x + y if self.residual else y


class MobileNetV3LargeEncoder(nn.Module):
    """The feature stack; returns (f1, f2, f3, f4) at 1/2, 1/4, 1/8, 1/16 (16/24/40/960 ch)."""

    def __init__(self) -> None:
        super().__init__()
        layers: list[nn.Module] = [ConvBNAct(3, 16, 3, 2, act="HS")]
        layers += [InvertedResidual(*row) for row in MOBILENET_V3_LARGE]
        layers.append(ConvBNAct(160, 960, 1, act="HS"))
        self.features = nn.Sequential(*layers)
        # not in the checkpoint
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        x = (x - self.mean.to(x.dtype)) / self.std.to(x.dtype)
        taps = {1: 0, 3: 1, 6: 2, 16: 3}
        out: list[Tensor] = []
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in taps:
                out.append(x)
        return out[0], out[1], out[2], out[3]


class LRASPP(nn.Module):
    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.aspp1 = nn.Sequential(nn.Conv2d(cin, cout, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(True))
        self.aspp2 = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(cin, cout, 1, bias=False), nn.Sigmoid())

    def forward(self, x: Tensor) -> Tensor:
        return self.aspp1(x) * self.aspp2(x)


class ConvGRU(nn.Module):
    """Convolutional GRU; ``h`` broadcasts (zeros ``[1, 1, 1, 1]`` start a clip)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.channels = channels
        self.ih = nn.Sequential(nn.Conv2d(2 * channels, 2 * channels, 3, padding=1), nn.Sigmoid())
        self.hh = nn.Sequential(nn.Conv2d(2 * channels, channels, 3, padding=1), nn.Tanh())

    def forward(self, x: Tensor, h: Tensor | None) -> Tensor:
        h = torch.zeros_like(x) if h is None else h.expand_as(x)
        r, z = self.ih(torch.cat([x, h], dim=1)).split(self.channels, dim=1)
        c = self.hh(torch.cat([x, r * h], dim=1))
        return (1 - z) * h + z * c


class BottleneckBlock(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.channels = channels
        self.gru = ConvGRU(channels // 2)

    def forward(self, x: Tensor, r: Tensor | None) -> tuple[Tensor, Tensor]:
        a, b = x.split(self.channels // 2, dim=1)
        r = self.gru(b, r)
        return torch.cat([a, r], dim=1), r


def _up2_crop(x: Tensor, like: Tensor) -> Tensor:
    """2x bilinear upsampling cropped to the spatial size of ``like`` (odd sizes)."""
    x = F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=False)
    return x[:, :, : like.size(2), : like.size(3)]


class UpsamplingBlock(nn.Module):
    def __init__(self, cin: int, skip: int, src: int, cout: int) -> None:
        super().__init__()
        self.out_channels = cout
        self.conv = nn.Sequential(
            nn.Conv2d(cin + skip + src, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(True)
        )
        self.gru = ConvGRU(cout // 2)

    def forward(self, x: Tensor, f: Tensor, s: Tensor, r: Tensor | None) -> tuple[Tensor, Tensor]:
        x = self.conv(torch.cat([_up2_crop(x, s), f, s], dim=1))
        a, b = x.split(self.out_channels // 2, dim=1)
        r = self.gru(b, r)
        return torch.cat([a, r], dim=1), r


class OutputBlock(nn.Module):
    def __init__(self, cin: int, src: int, cout: int) -> None:
        super().__init__()
        self.conv = nn.Sequential(
            nn.Conv2d(cin + src, cout, 3, 1, 1, bias=False),
            nn.BatchNorm2d(cout),
            nn.ReLU(True),
            nn.Conv2d(cout, cout, 3, 1, 1, bias=False),
            nn.BatchNorm2d(cout),
            nn.ReLU(True),
        )

    def forward(self, x: Tensor, s: Tensor) -> Tensor:
        return self.conv(torch.cat([_up2_crop(x, s), s], dim=1))


class RecurrentDecoder(nn.Module):
    def __init__(self, feature: tuple[int, ...] = FEATURE_CHANNELS, decoder: tuple[int, ...] = DECODER_CHANNELS):
        super().__init__()
        self.decode4 = BottleneckBlock(feature[3])
        self.decode3 = UpsamplingBlock(feature[3], feature[2], 3, decoder[0])
        self.decode2 = UpsamplingBlock(decoder[0], feature[1], 3, decoder[1])
        self.decode1 = UpsamplingBlock(decoder[1], feature[0], 3, decoder[2])
        self.decode0 = OutputBlock(decoder[2], 3, decoder[3])

    def forward(
        self, s0: Tensor, f1: Tensor, f2: Tensor, f3: Tensor, f4: Tensor,
        r1: Tensor | None, r2: Tensor | None, r3: Tensor | None, r4: Tensor | None,
    ) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:  # fmt: skip
        s1 = F.avg_pool2d(s0, 2, 2, ceil_mode=True, count_include_pad=False)
        s2 = F.avg_pool2d(s1, 2, 2, ceil_mode=True, count_include_pad=False)
        s3 = F.avg_pool2d(s2, 2, 2, ceil_mode=True, count_include_pad=False)
        x4, r4 = self.decode4(f4, r4)
        x3, r3 = self.decode3(x4, f3, s3, r3)
        x2, r2 = self.decode2(x3, f2, s2, r2)
        x1, r1 = self.decode1(x2, f1, s1, r1)
        return self.decode0(x1, s0), r1, r2, r3, r4


class Projection(nn.Module):
    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 1)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(x)


class DeepGuidedFilterRefiner(nn.Module):
    """Learned guided filter: local linear coefficients from the low-resolution input and
    prediction (plus hidden features), upsampled and applied to the full frame."""

    def __init__(self, hid: int = 16) -> None:
        super().__init__()
        self.box_filter = nn.Conv2d(4, 4, 3, padding=1, bias=False, groups=4)
        with torch.no_grad():
            self.box_filter.weight.fill_(1.0 / 9.0)
        self.conv = nn.Sequential(
            nn.Conv2d(4 * 2 + hid, hid, 1, bias=False),
            nn.BatchNorm2d(hid),
            nn.ReLU(True),
            nn.Conv2d(hid, hid, 1, bias=False),
            nn.BatchNorm2d(hid),
            nn.ReLU(True),
            nn.Conv2d(hid, 4, 1, bias=True),
        )

    def forward(self, fine: Tensor, base: Tensor, fgr: Tensor, pha: Tensor, hid: Tensor) -> tuple[Tensor, Tensor]:
        fine_x = torch.cat([fine, fine.mean(1, keepdim=True)], dim=1)
        base_x = torch.cat([base, base.mean(1, keepdim=True)], dim=1)
        base_y = torch.cat([fgr, pha], dim=1)
        mean_x = self.box_filter(base_x)
        mean_y = self.box_filter(base_y)
        cov_xy = self.box_filter(base_x * base_y) - mean_x * mean_y
        var_x = self.box_filter(base_x * base_x) - mean_x * mean_x
        a = self.conv(torch.cat([cov_xy, var_x, hid], dim=1))
        b = mean_y - a * mean_x
        size = (fine.size(2), fine.size(3))
        a = F.interpolate(a, size, mode="bilinear", align_corners=False)
        b = F.interpolate(b, size, mode="bilinear", align_corners=False)
        out = a * fine_x + b
        return out[:, :3], out[:, 3:]


class _ResizeByRatio(torch.autograd.Function):
    """Bilinear resize by a runtime ratio tensor ``[1]``; exported as one ONNX ``Resize``
    whose scales are built from the graph input (the default export would freeze the ratio)."""

    @staticmethod
    def forward(ctx: Any, x: Tensor, ratio: Tensor) -> Tensor:  # noqa: ARG004
        with warnings.catch_warnings():  # traced as a constant, but symbolic() replaces it in the graph
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
            scale = float(ratio.reshape(-1)[0])
        return F.interpolate(x, scale_factor=scale, mode="bilinear", align_corners=False, recompute_scale_factor=False)

    @staticmethod
    def symbolic(g: Any, x: Any, ratio: Any) -> Any:
        ones = g.op("Constant", value_t=torch.tensor([1.0, 1.0]))
        r = g.op("Cast", g.op("Reshape", ratio, g.op("Constant", value_t=torch.tensor([1]))), to_i=1)
        scales = g.op("Concat", ones, r, r, axis_i=0)
        roi = g.op("Constant", value_t=torch.tensor([], dtype=torch.float32))
        return g.op(
            "Resize", x, roi, scales, coordinate_transformation_mode_s="pytorch_half_pixel", mode_s="linear",
            cubic_coeff_a_f=-0.75, nearest_mode_s="floor",
        )  # fmt: skip


class MattingNetwork(nn.Module):
    """RVM with the MobileNetV3-Large backbone and the deep guided filter refiner."""

    def __init__(self) -> None:
        super().__init__()
        self.backbone = MobileNetV3LargeEncoder()
        self.aspp = LRASPP(960, FEATURE_CHANNELS[3])
        self.decoder = RecurrentDecoder()
        self.project_mat = Projection(DECODER_CHANNELS[3], 4)
        self.project_seg = Projection(DECODER_CHANNELS[3], 1)
        self.refiner = DeepGuidedFilterRefiner()

    def forward(
        self, src: Tensor, r1: Tensor | None = None, r2: Tensor | None = None, r3: Tensor | None = None,
        r4: Tensor | None = None, downsample_ratio: float | Tensor = 1.0,
    ) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]:  # fmt: skip
        exporting = torch.onnx.is_in_onnx_export()
        if exporting:
            ratio_t = downsample_ratio if isinstance(downsample_ratio, Tensor) else torch.tensor([downsample_ratio])
            src_sm = _ResizeByRatio.apply(src, ratio_t)
            refine = True
        else:
            ratio = float(downsample_ratio.reshape(-1)[0]) if isinstance(downsample_ratio, Tensor) else downsample_ratio
            refine = ratio != 1.0
            src_sm = (
                F.interpolate(src, scale_factor=ratio, mode="bilinear", align_corners=False,
                              recompute_scale_factor=False) if refine else src
            )  # fmt: skip
        f1, f2, f3, f4 = self.backbone(src_sm)
        f4 = self.aspp(f4)
        hid, r1, r2, r3, r4 = self.decoder(src_sm, f1, f2, f3, f4, r1, r2, r3, r4)
        mat = self.project_mat(hid)
        fgr_res, pha = mat[:, :3], mat[:, 3:]
        if refine:
            fgr_res, pha = self.refiner(src, src_sm, fgr_res, pha, hid)
        fgr = (fgr_res + src).clamp(0.0, 1.0)
        return fgr, pha.clamp(0.0, 1.0), r1, r2, r3, r4


def state_shapes(height: int, width: int, downsample_ratio: float, batch: int = 1) -> list[tuple[int, int, int, int]]:
    """Shapes of r1 .. r4 for frames of ``height x width`` at ``downsample_ratio``."""
    h, w = (int(height * downsample_ratio), int(width * downsample_ratio)) if downsample_ratio != 1 else (height, width)
    shapes = []
    for c, s in zip(STATE_CHANNELS, STATE_STRIDES):
        hh, ww = h, w
        for _ in range(s.bit_length() - 1):  # ceil-halving, like the strided convs and pools
            hh, ww = (hh + 1) // 2, (ww + 1) // 2
        shapes.append((batch, c, hh, ww))
    return shapes


def example(batch: int = 1, height: int = 256, width: int = 256, downsample_ratio: float = 0.5,
            **_: Any) -> dict[str, Any]:
    """Example inputs for the ONNX export and the bench (the registry's ``example`` hook): a
    frame in [0, 1], the states a clip has after its first frame, a valid ratio (random
    normal numbers would make the ratio negative)."""
    import numpy as np

    rng = np.random.default_rng(0)
    out: dict[str, Any] = {"src": rng.random((batch, 3, height, width), dtype=np.float32)}
    for i, shape in enumerate(state_shapes(height, width, downsample_ratio, batch), start=1):
        out[f"r{i}i"] = (0.1 * rng.standard_normal(shape)).astype(np.float32)
    out["downsample_ratio"] = np.array([downsample_ratio], np.float32)
    return out


def build(weights: Path | None = None, variant: str = "mobilenetv3", **options: Any) -> nn.Module:
    """The registry's builder: RVM MobileNetV3 in eval mode, random init when ``weights`` is None.

    ``weights``: the released ``rvm_mobilenetv3.pth`` (a plain state dict), loaded strict.
    """
    from pipeline.errors import InvalidOption

    if variant != "mobilenetv3":
        raise InvalidOption(f"Only RVM's mobilenetv3 variant is implemented; got {variant!r}.")
    if options:
        raise InvalidOption(f"rvm_net.build takes no option {', '.join(sorted(options))}.")
    net = MattingNetwork()
    if weights is not None:
        state = torch.load(str(weights), map_location="cpu", weights_only=True)
        if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
            state = state["state_dict"]
        net.load_state_dict(state, strict=True)
        log.info("loaded RVM weights from %s", weights)
    return net.eval()
