"""Inpainting networks (nn.Module only: no loading, no I/O).

Every generator maps ``(B, in_ch, H, W)`` to ``(B, 3, H, W)`` in [-1, 1] (tanh). The usual input is
the image in [-1, 1] with the holes zeroed, concatenated with the hole mask (1 = hole): ``in_ch=4``.
``ResidualInpainter`` wraps any of them to predict a correction on top of a classical fill instead,
so an untrained network starts at the classical fill's quality.

H and W must be multiples of ``Generator.multiple`` (pad before calling; ``pad_to_multiple`` in ops).

- ``UNetInpaint``: the plain U-Net of the user's notes: 6 strided convs down, 5 bilinear-upsample +
  skip-concat convs up (plus one to full resolution), tanh.
- ``PartialConvUNet``: Liu et al. 2018: every convolution sees only valid pixels, renormalised by the
  valid fraction of its window, and passes on an updated mask.
- ``GatedCoarseToFine``: DeepFill v2 (Yu et al. 2019): gated convolutions, a coarse network, then a
  refinement network with a dilated branch and a contextual-attention branch (hole features
  rebuilt from known-region features by patch similarity).
- ``GLCIC``: Iizuka et al. 2017: a dilated-convolution completion network (its global and local
  discriminators live in ``bgclean.train``).
- ``DMFN``: Hui et al. 2020: dense multi-scale fusion blocks (four dilated branches fused
  cumulatively) in an encoder-decoder.
- ``FFCInpaint``: LaMa's idea (Suvorov et al. 2022): fast Fourier convolutions, whose spectral branch
  gives every layer a receptive field as wide as the image.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


def _act() -> nn.Module:
    return nn.LeakyReLU(0.2, inplace=True)


def _conv(cin: int, cout: int, k: int = 3, s: int = 1, d: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, k, s, padding=d * (k - 1) // 2, dilation=d)


class Generator(nn.Module):
    """Base: ``multiple`` is the size granularity the network needs."""

    multiple = 8


class UNetInpaint(Generator):
    multiple = 64

    def __init__(self, in_ch: int = 4, width: int = 32):
        super().__init__()
        chans = [width, width * 2, width * 4, width * 4, width * 8, width * 8]
        self.down = nn.ModuleList()
        prev = in_ch
        for c in chans:  # 6 strided convs: H/2 ... H/64
            self.down.append(nn.Sequential(_conv(prev, c, 3, 2), _act()))
            prev = c
        self.up = nn.ModuleList()
        for skip in reversed(chans[:-1]):  # 5 upsample + concat convs: H/32 ... H/2
            self.up.append(nn.Sequential(_conv(prev + skip, skip), _act()))
            prev = skip
        self.last = nn.Sequential(_conv(prev + in_ch, width), _act(), _conv(width, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips, h = [], x
        for layer in self.down:
            h = layer(h)
            skips.append(h)
        for layer, skip in zip(self.up, reversed(skips[:-1])):
            h = F.interpolate(h, size=skip.shape[2:], mode="bilinear", align_corners=False)
            h = layer(torch.cat([h, skip], 1))
        h = F.interpolate(h, size=x.shape[2:], mode="bilinear", align_corners=False)
        return torch.tanh(self.last(torch.cat([h, x], 1)))


class PartialConv2d(nn.Module):
    """Convolution over valid pixels only: out = W·(x⊙m) · (window size / valid count) + b where the
    window holds any valid pixel, else 0; the new mask is 1 there. ``m``: (B,1,H,W), 1 = valid."""

    ones: torch.Tensor

    def __init__(self, cin: int, cout: int, k: int, s: int = 1):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, k, s, k // 2, bias=True)
        self.register_buffer("ones", torch.ones(1, 1, k, k), persistent=False)
        self.k, self.s = k, s

    def forward(self, x: torch.Tensor, valid: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        with torch.no_grad():
            count = F.conv2d(valid, self.ones, stride=self.s, padding=self.k // 2)
            new_valid = (count > 0).to(x.dtype)
            ratio = (self.k * self.k) / count.clamp_min(1.0) * new_valid
        raw = F.conv2d(x * valid, self.conv.weight, None, self.s, self.k // 2)
        assert self.conv.bias is not None  # made with bias=True
        bias = self.conv.bias.view(1, -1, 1, 1)
        return (raw * ratio + bias) * new_valid, new_valid


class PartialConvUNet(Generator):
    multiple = 32

    def __init__(self, in_ch: int = 4, width: int = 32):
        super().__init__()
        self.img_ch = in_ch - 1  # the mask is the validity map, not a feature
        chans = [width, width * 2, width * 4, width * 8, width * 8]
        ks = [7, 5, 5, 3, 3]
        self.enc = nn.ModuleList()
        prev = self.img_ch
        for c, k in zip(chans, ks):
            self.enc.append(PartialConv2d(prev, c, k, 2))
            prev = c
        self.dec = nn.ModuleList()
        for skip in list(reversed(chans[:-1])) + [self.img_ch]:
            self.dec.append(PartialConv2d(prev + skip, skip if skip != self.img_ch else width, 3))
            prev = skip if skip != self.img_ch else width
        self.out = nn.Conv2d(prev, 3, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        img, valid = x[:, : self.img_ch], 1 - x[:, self.img_ch :]
        feats, masks = [img], [valid]
        h, m = img, valid
        for layer in self.enc:
            h, m = layer(h, m)
            h = F.relu(h)
            feats.append(h)
            masks.append(m)
        for layer, skip, skip_m in zip(self.dec, reversed(feats[:-1]), reversed(masks[:-1])):
            h = F.interpolate(h, size=skip.shape[2:], mode="nearest")
            m = F.interpolate(m, size=skip.shape[2:], mode="nearest")
            h, m = layer(torch.cat([h, skip], 1), torch.maximum(m, skip_m).expand(-1, 1, -1, -1))
            h = F.leaky_relu(h, 0.2)
        return torch.tanh(self.out(h))


class GatedConv2d(nn.Module):
    """Gated convolution: features · sigmoid(gate), both learned (a soft, learned partial conv)."""

    def __init__(self, cin: int, cout: int, k: int = 3, s: int = 1, d: int = 1, act: bool = True):
        super().__init__()
        self.conv = nn.Conv2d(cin, 2 * cout, k, s, d * (k - 1) // 2, dilation=d)
        self.act = act

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feat, gate = self.conv(x).chunk(2, 1)
        feat = F.elu(feat) if self.act else feat
        return feat * torch.sigmoid(gate)


def contextual_attention(fg: torch.Tensor, hole: torch.Tensor, patch: int = 3, softmax_scale: float = 10.0
                         ) -> torch.Tensor:
    """DeepFill's contextual attention, dense form: each position's feature is rebuilt as a softmax-
    weighted sum of known-region features, weighted by cosine similarity of ``patch``x``patch``
    neighbourhoods. fg: (B,C,h,w); hole: (B,1,h,w) 1 = hole. Inside holes only known positions are
    attended to. Cost is (h·w)², so call it at a low resolution."""
    b, c, h, w = fg.shape
    pad = patch // 2
    cols = F.unfold(fg, patch, padding=pad)  # (B, C·p², h·w)
    normed = cols / cols.norm(dim=1, keepdim=True).clamp_min(1e-4)
    sim = torch.einsum("bkn,bkm->bnm", normed, normed)  # (B, h·w queries, h·w keys)
    known = (hole.flatten(2) < 0.5).float()  # (B,1,h·w) keys that are background
    sim = sim * softmax_scale - (1 - known) * 1e4
    attn = sim.softmax(dim=2)
    out = torch.einsum("bnm,bcm->bcn", attn, fg.flatten(2)).view(b, c, h, w)
    # keep known positions as they are: attention only rebuilds the holes
    return out * hole + fg * (1 - hole)


class GatedCoarseToFine(Generator):
    multiple = 8

    def __init__(self, in_ch: int = 4, width: int = 32):
        super().__init__()
        c = width
        self.coarse = nn.Sequential(
            GatedConv2d(in_ch, c, 5), GatedConv2d(c, 2 * c, 3, 2), GatedConv2d(2 * c, 2 * c),
            GatedConv2d(2 * c, 4 * c, 3, 2), GatedConv2d(4 * c, 4 * c),
            *[GatedConv2d(4 * c, 4 * c, d=d) for d in (2, 4, 8, 16)],
            GatedConv2d(4 * c, 4 * c), nn.Upsample(scale_factor=2, mode="nearest"), GatedConv2d(4 * c, 2 * c),
            nn.Upsample(scale_factor=2, mode="nearest"), GatedConv2d(2 * c, c), GatedConv2d(c, 3, act=False),
        )
        self.refine_dilated = nn.Sequential(
            GatedConv2d(in_ch, c, 5), GatedConv2d(c, c, 3, 2), GatedConv2d(c, 2 * c),
            GatedConv2d(2 * c, 4 * c, 3, 2), *[GatedConv2d(4 * c, 4 * c, d=d) for d in (2, 4, 8, 16)],
        )
        self.refine_attn_in = nn.Sequential(
            GatedConv2d(in_ch, c, 5), GatedConv2d(c, c, 3, 2), GatedConv2d(c, 2 * c),
            GatedConv2d(2 * c, 4 * c, 3, 2), GatedConv2d(4 * c, 4 * c),
        )
        self.refine_attn_out = nn.Sequential(GatedConv2d(4 * c, 4 * c), GatedConv2d(4 * c, 4 * c))
        self.merge = nn.Sequential(
            GatedConv2d(8 * c, 4 * c), GatedConv2d(4 * c, 4 * c), nn.Upsample(scale_factor=2, mode="nearest"),
            GatedConv2d(4 * c, 2 * c), nn.Upsample(scale_factor=2, mode="nearest"), GatedConv2d(2 * c, c),
            GatedConv2d(c, 3, act=False),
        )

    def forward(self, x: torch.Tensor, return_coarse: bool = False):
        hole = x[:, -1:]
        image = x[:, :-1]
        coarse = torch.tanh(self.coarse(x))
        if image.shape[1] == 3:  # the coarse result fills the holes for the refinement pass
            image = image * (1 - hole) + coarse * hole
        else:  # extra input channels (a classical fill): refine the first three
            image = torch.cat([image[:, :3] * (1 - hole) + coarse * hole, image[:, 3:]], 1)
        x2 = torch.cat([image, hole], 1)
        a = self.refine_dilated(x2)
        b = self.refine_attn_in(x2)
        small_hole = F.interpolate(hole, size=b.shape[2:], mode="nearest")
        b = self.refine_attn_out(contextual_attention(b, small_hole))
        fine = torch.tanh(self.merge(torch.cat([a, b], 1)))
        return (fine, coarse) if return_coarse else fine


class GLCIC(Generator):
    multiple = 4

    def __init__(self, in_ch: int = 4, width: int = 32):
        super().__init__()
        c = width
        self.net = nn.Sequential(
            _conv(in_ch, 2 * c, 5), _act(), _conv(2 * c, 4 * c, 3, 2), _act(), _conv(4 * c, 4 * c), _act(),
            _conv(4 * c, 8 * c, 3, 2), _act(), _conv(8 * c, 8 * c), _act(),
            *[m for d in (2, 4, 8, 16) for m in (_conv(8 * c, 8 * c, d=d), _act())],
            _conv(8 * c, 8 * c), _act(),
            nn.ConvTranspose2d(8 * c, 4 * c, 4, 2, 1), _act(), _conv(4 * c, 4 * c), _act(),
            nn.ConvTranspose2d(4 * c, 2 * c, 4, 2, 1), _act(), _conv(2 * c, c), _act(), _conv(c, 3),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.net(x))


class DenseMultiScaleFusion(nn.Module):
    """DMFN's block: reduce, four dilated 3x3 branches (1, 2, 4, 8) summed cumulatively so each
    sees the coarser ones, concatenated, fused by 1x1, added to the input."""

    def __init__(self, c: int):
        super().__init__()
        q = c // 4
        self.reduce = nn.Sequential(_conv(c, q), _act())
        self.branches = nn.ModuleList(_conv(q, q, d=d) for d in (1, 2, 4, 8))
        self.fuse_k = nn.ModuleList(_conv(q, q) for _ in range(3))
        self.fuse = nn.Conv2d(4 * q, c, 1)
        self.norm = nn.InstanceNorm2d(c, affine=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        r = self.reduce(x)
        outs = [self.branches[0](r)]
        for branch, k in zip(self.branches[1:], self.fuse_k):
            outs.append(k(branch(r) + outs[-1]))
        return x + self.norm(self.fuse(torch.cat(outs, 1)))


class DMFN(Generator):
    multiple = 4

    def __init__(self, in_ch: int = 4, width: int = 32, blocks: int = 8):
        super().__init__()
        c = width
        self.enc = nn.Sequential(_conv(in_ch, c, 5), _act(), _conv(c, 2 * c, 3, 2), _act(),
                                 _conv(2 * c, 4 * c, 3, 2), _act())
        self.body = nn.Sequential(*[DenseMultiScaleFusion(4 * c) for _ in range(blocks)])
        self.dec = nn.Sequential(nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False),
                                 _conv(4 * c, 2 * c), _act(),
                                 nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False),
                                 _conv(2 * c, c), _act(), _conv(c, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.dec(self.body(self.enc(x))))


class SpectralTransform(nn.Module):
    """LaMa's global branch: 1x1 conv, real FFT over H and W, 1x1 conv + ReLU on the (real, imag)
    channels, inverse FFT, 1x1 conv. Every output pixel depends on every input pixel."""

    def __init__(self, c: int):
        super().__init__()
        h = c // 2
        self.inp = nn.Sequential(nn.Conv2d(c, h, 1, bias=False), nn.BatchNorm2d(h), nn.ReLU(inplace=True))
        self.freq = nn.Sequential(nn.Conv2d(2 * h, 2 * h, 1, bias=False), nn.BatchNorm2d(2 * h), nn.ReLU(inplace=True))
        self.out = nn.Conv2d(h, c, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.inp(x)
        b, c, hh, ww = x.shape
        spec = torch.fft.rfft2(x.float(), norm="ortho")
        f = torch.cat([spec.real, spec.imag], 1).to(x.dtype)
        f = self.freq(f).float()
        spec = torch.complex(f[:, :c], f[:, c:])
        y = torch.fft.irfft2(spec, s=(hh, ww), norm="ortho").to(x.dtype)
        return self.out(x + y)


class FFCBlock(nn.Module):
    """A residual fast-Fourier-convolution block: half the channels local (3x3 convs), half global
    (spectral transform), exchanging information both ways."""

    def __init__(self, c: int):
        super().__init__()
        self.local_ch = c // 2
        g = c - self.local_ch
        lc = self.local_ch
        self.l2l, self.l2g, self.g2l = _conv(lc, lc), _conv(lc, g), _conv(g, lc)
        self.g2g = SpectralTransform(g)
        self.norm_l, self.norm_g = nn.BatchNorm2d(lc), nn.BatchNorm2d(g)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xl, xg = x[:, : self.local_ch], x[:, self.local_ch :]
        yl = F.relu(self.norm_l(self.l2l(xl) + self.g2l(xg)))
        yg = F.relu(self.norm_g(self.l2g(xl) + self.g2g(xg)))
        return x + torch.cat([yl, yg], 1)


class FFCInpaint(Generator):
    multiple = 8

    def __init__(self, in_ch: int = 4, width: int = 32, blocks: int = 6):
        super().__init__()
        c = width
        self.enc = nn.Sequential(nn.ReflectionPad2d(3), nn.Conv2d(in_ch, c, 7), nn.BatchNorm2d(c), nn.ReLU(True),
                                 nn.Conv2d(c, 2 * c, 3, 2, 1), nn.BatchNorm2d(2 * c), nn.ReLU(True),
                                 nn.Conv2d(2 * c, 4 * c, 3, 2, 1), nn.BatchNorm2d(4 * c), nn.ReLU(True),
                                 nn.Conv2d(4 * c, 4 * c, 3, 2, 1), nn.BatchNorm2d(4 * c), nn.ReLU(True))
        self.body = nn.Sequential(*[FFCBlock(4 * c) for _ in range(blocks)])
        self.dec = nn.Sequential(
            nn.ConvTranspose2d(4 * c, 4 * c, 3, 2, 1, output_padding=1), nn.BatchNorm2d(4 * c), nn.ReLU(True),
            nn.ConvTranspose2d(4 * c, 2 * c, 3, 2, 1, output_padding=1), nn.BatchNorm2d(2 * c), nn.ReLU(True),
            nn.ConvTranspose2d(2 * c, c, 3, 2, 1, output_padding=1), nn.BatchNorm2d(c), nn.ReLU(True),
            nn.ReflectionPad2d(3), nn.Conv2d(c, 3, 7))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.dec(self.body(self.enc(x))))


class ResidualInpainter(Generator):
    """A generator that corrects a classical fill. Input ``(B,4,H,W)``: the image with its holes
    already filled classically (Telea), in [-1, 1], and the hole mask (1 = hole).

    The inner generator sees it at ``1/scale`` resolution (most computation at low resolution is
    the CPU lever); its output, read as a correction in [-1, 1], is upsampled and added. A small
    full-resolution head then adds detail. The last layers of both start at zero, so an untrained
    model returns the classical fill and training starts at its quality. Only the holes change."""

    def __init__(self, inner: Generator, scale: int = 2, width: int = 16):
        super().__init__()
        self.inner, self.scale = inner, scale
        self.multiple = inner.multiple * scale
        last = [m for m in inner.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))][-1]
        nn.init.zeros_(last.weight)
        if last.bias is not None:
            nn.init.zeros_(last.bias)
        first, middle, out = _conv(3 + 3 + 1, width), _conv(width, width), _conv(width, 3)
        nn.init.zeros_(out.weight)
        nn.init.zeros_(out.bias)  # type: ignore[arg-type]  # _conv makes a bias
        self.detail = nn.Sequential(first, _act(), middle, _act(), out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        fill, hole = x[:, :3], x[:, 3:4]
        if self.scale > 1:
            small = F.interpolate(x, scale_factor=1 / self.scale, mode="bilinear", align_corners=False, antialias=True)
            small = torch.cat([small[:, :3], (small[:, 3:4] > 0).to(x.dtype)], 1)
        else:
            small = x
        correction = self.inner(small)
        if self.scale > 1:
            correction = F.interpolate(correction, size=x.shape[2:], mode="bilinear", align_corners=False)
        base = fill + correction
        out = base + self.detail(torch.cat([base, fill, hole], 1))
        return out.clamp(-1, 1) * hole + fill * (1 - hole)


ARCHITECTURES = {
    "unet": UNetInpaint,
    "pconv": PartialConvUNet,
    "gated": GatedCoarseToFine,
    "glcic": GLCIC,
    "dmfn": DMFN,
    "ffc": FFCInpaint,
}


def build_inpainter(name: str, width: int = 32, residual: bool = False, scale: int = 2, **extra) -> Generator:
    """``name`` in ARCHITECTURES; ``residual=True`` wraps it in ``ResidualInpainter`` (input: the
    classically filled image and the mask)."""
    if name not in ARCHITECTURES:
        raise ValueError(f"unknown inpainting network {name!r}; choose one of: {', '.join(ARCHITECTURES)}")
    net = ARCHITECTURES[name](in_ch=4, width=width, **extra)
    return ResidualInpainter(net, scale=scale) if residual else net


def architecture_name(arch: str, width: int, residual: bool, scale: int) -> str:
    """The registry's architecture string for an inpainter, e.g. ``inpaint.ffc.w32.res2``."""
    return f"inpaint.{arch}.w{width}" + (f".res{scale}" if residual else "")


def parse_architecture(name: str) -> dict:
    """Inverse of ``architecture_name``: keyword arguments for ``build_inpainter``."""
    parts = name.split(".")
    if len(parts) not in (3, 4) or parts[0] != "inpaint" or not parts[2].startswith("w"):
        raise ValueError(f"not an inpainter architecture name: {name!r}")
    kw = {"name": parts[1], "width": int(parts[2][1:]), "residual": False, "scale": 1}
    if len(parts) == 4:
        kw.update(residual=True, scale=int(parts[3].removeprefix("res")))
    return kw


def network_input(image: torch.Tensor, hole: torch.Tensor, fill: torch.Tensor | None = None) -> torch.Tensor:
    """What the generators take: ``image`` (B,3,H,W) in [0,1], ``hole`` (B,1,H,W) in {0,1}. Plain
    models get the image with the holes zeroed; residual models (``fill`` given: the classical fill,
    in [0,1]) get the fill. Both in [-1,1], with the mask as the 4th channel."""
    if fill is not None:
        return torch.cat([fill * 2 - 1, hole], 1)
    return torch.cat([(image * 2 - 1) * (1 - hole), hole], 1)
