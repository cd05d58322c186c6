"""Pretrained convolutional stems that replace GRM's patch embedding in small variants.

A transformer trained from scratch on a few thousand real frames learns no general appearance features
(the first default model lost real targets within a few frames). Every practical small tracker starts
from pretrained features, so a stem variant feeds GRM's blocks with the tokens of a tracking backbone
instead of a linear patch projection. The token grid, the division and the head are unchanged.

``nanotrack``: the backbone of NanoTrack v2 (Apache-2.0, github.com/HonglinChu/SiamTrackers), a
MobileNetV3-small style network trained for tracking: 188 k parameters, stride 16, 48 channels, RGB
0..255 input, BatchNorm folded into its convolutions. Its weights ship converted in
``weights/nanotrack_stem.pth`` (``python -m grm_ros.model.stems --onnx backbone.onnx`` rebuilds them from
the released ONNX file; the parity test compares this module with onnxruntime on that file).
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from grm_ros.model.config import IMAGENET_MEAN, IMAGENET_STD

STEM_WEIGHTS = Path(__file__).resolve().parent / "weights" / "nanotrack_stem.pth"


@dataclass(frozen=True)
class BlockSpec:
    """One inverted-residual block: optional 1x1 expansion, depthwise conv, optional squeeze-excite, 1x1
    projection. ``act_first``: the activation comes before the squeeze-excite (NanoTrack's first block)
    rather than after it (the others)."""

    expand: int | None
    out: int
    kernel: int
    stride: int
    se_hidden: int | None
    hswish: bool
    act_first: bool = False


NANOTRACK_BLOCKS = (
    BlockSpec(None, 16, 3, 2, 8, hswish=False, act_first=True),
    BlockSpec(72, 24, 3, 2, None, hswish=False),
    BlockSpec(88, 24, 3, 1, None, hswish=False),
    BlockSpec(96, 40, 5, 2, 24, hswish=True),
    BlockSpec(240, 40, 5, 1, 64, hswish=True),
    BlockSpec(240, 40, 5, 1, 64, hswish=True),
    BlockSpec(120, 48, 5, 1, 32, hswish=True),
    BlockSpec(144, 48, 5, 1, 40, hswish=True),
)
STEM_IN = 16
STEM_CHANNELS = 48
STEM_STRIDE = 16


class SqueezeExcite(nn.Module):
    def __init__(self, channels: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(channels, hidden)
        self.fc2 = nn.Linear(hidden, channels)

    def forward(self, x: Tensor) -> Tensor:
        scale = F.hardsigmoid(self.fc2(F.relu(self.fc1(x.mean(dim=(2, 3))))))
        return x * scale[:, :, None, None]


class InvertedResidual(nn.Module):
    def __init__(self, spec: BlockSpec, channels: int) -> None:
        super().__init__()
        hidden = spec.expand or channels
        self.expand = nn.Conv2d(channels, hidden, 1) if spec.expand else None
        self.depthwise = nn.Conv2d(hidden, hidden, spec.kernel, spec.stride, spec.kernel // 2, groups=hidden)
        self.se = SqueezeExcite(hidden, spec.se_hidden) if spec.se_hidden else None
        self.project = nn.Conv2d(hidden, spec.out, 1)
        self.act = nn.Hardswish() if spec.hswish else nn.ReLU()
        self.act_first = spec.act_first
        self.residual = spec.stride == 1 and channels == spec.out

    def forward(self, x: Tensor) -> Tensor:
        y = self.act(self.expand(x)) if self.expand is not None else x
        y = self.depthwise(y)
        if self.act_first:
            y = self.act(y)
        if self.se is not None:
            y = self.se(y)
        if not self.act_first:
            y = self.act(y)
        y = self.project(y)
        return x + y if self.residual else y


class NanoTrackStem(nn.Module):
    """NanoTrack v2's backbone on 0..255 RGB crops: (B, 3, H, W) -> (B, 48, H/16, W/16)."""

    def __init__(self) -> None:
        super().__init__()
        self.first = nn.Conv2d(3, STEM_IN, 3, 2, 1)
        self.act = nn.Hardswish()
        blocks, channels = [], STEM_IN
        for spec in NANOTRACK_BLOCKS:
            blocks.append(InvertedResidual(spec, channels))
            channels = spec.out
        self.blocks = nn.Sequential(*blocks)

    def forward(self, pixels: Tensor) -> Tensor:
        return self.blocks(self.act(self.first(pixels)))

    def ordered_layers(self) -> list[nn.Conv2d | nn.Linear]:
        """Convolutions and squeeze-excite linears in the order the ONNX graph runs them."""
        layers: list[nn.Conv2d | nn.Linear] = [self.first]
        for block in self.blocks:
            if block.expand is not None:
                layers.append(block.expand)
            layers.append(block.depthwise)
            if block.se is not None:
                layers += [block.se.fc1, block.se.fc2]
            layers.append(block.project)
        return layers


class StemEmbed(nn.Module):
    """Pretrained stem + 1x1 projection to the transformer width, as row-major tokens like ``PatchEmbed``.

    It takes the tracker's ImageNet-normalised crops and undoes the normalisation, because the stem was
    trained on raw 0..255 pixels; the frames and crops stay shared with every other variant.
    """

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.stem = NanoTrackStem()
        self.proj = nn.Conv2d(STEM_CHANNELS, dim, kernel_size=1)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1) * 255.0, persistent=False)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1) * 255.0, persistent=False)

    def forward(self, image: Tensor) -> Tensor:
        pixels = image * self.std + self.mean
        return self.proj(self.stem(pixels)).flatten(2).transpose(1, 2)


def stem_state_from_onnx(path: str | Path) -> dict[str, Tensor]:
    """The NanoTrackStem state_dict from NanoTrack's released ``backbone.onnx``.

    Conv and Gemm nodes are matched to the module's layers in execution order, and every shape is checked,
    so a different graph fails loudly instead of loading shifted weights.
    """
    import onnx
    from onnx import numpy_helper

    graph = onnx.load(str(path)).graph
    inits = {t.name: torch.from_numpy(numpy_helper.to_array(t).copy()) for t in graph.initializer}
    nodes = [n for n in graph.node if n.op_type in ("Conv", "Gemm")]
    stem = NanoTrackStem()
    layers = stem.ordered_layers()
    if len(nodes) != len(layers):
        raise ValueError(f"{path}: {len(nodes)} Conv/Gemm nodes, expected {len(layers)} for NanoTrack v2")
    names = {id(m): n for n, m in stem.named_modules()}
    state: dict[str, Tensor] = {}
    for node, layer in zip(nodes, layers, strict=True):
        weight, bias = (inits[name] for name in node.input[1:3])
        if weight.shape != layer.weight.shape or bias.shape != layer.bias.shape:
            raise ValueError(f"{path}: node {node.name or node.output[0]} has weight {tuple(weight.shape)}, "
                             f"expected {tuple(layer.weight.shape)} for {names[id(layer)]}")
        state[f"{names[id(layer)]}.weight"], state[f"{names[id(layer)]}.bias"] = weight, bias
    return state


def load_pretrained_stem(embed: StemEmbed, path: str | Path = STEM_WEIGHTS) -> None:
    """Load the packaged (or given) converted stem weights into ``embed.stem``."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    embed.stem.load_state_dict(state, strict=True)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m grm_ros.model.stems",
                                description="Convert NanoTrack v2's backbone.onnx into the packaged stem.")
    p.add_argument("--onnx", type=Path, required=True, help="NanoTrack v2 backbone.onnx")
    p.add_argument("--out", type=Path, default=STEM_WEIGHTS)
    args = p.parse_args(argv)
    torch.save(stem_state_from_onnx(args.onnx), args.out)
    print(args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
