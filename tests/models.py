"""Small real models for planner tests (torchvision-free ResNet/VGG, MLPs, RNNs)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(
                nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        identity = x if self.downsample is None else self.downsample(x)
        return F.relu(out + identity)


class ResNet(nn.Module):
    """ResNet-10-style: stem, 4 stages of one BasicBlock, global pool, classifier."""

    def __init__(self, width: int = 8, classes: int = 10) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(3, width, 3, 1, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU(inplace=True)
        )
        chans = [width, width, 2 * width, 4 * width, 8 * width]
        self.layers = nn.Sequential(
            *[BasicBlock(chans[i], chans[i + 1], 1 if i == 0 else 2) for i in range(4)]
        )
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(chans[-1], classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.pool(self.layers(self.stem(x))), 1))


class NoNormResNet(nn.Module):
    """Residual MLP without norms (the Fixup setting): L branches of m=2 linear layers."""

    def __init__(self, width: int = 32, blocks: int = 4) -> None:
        super().__init__()
        self.inp = nn.Linear(16, width)
        self.blocks = nn.ModuleList(
            nn.Sequential(nn.Linear(width, width), nn.ReLU(), nn.Linear(width, width))
            for _ in range(blocks)
        )
        self.head = nn.Linear(width, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.inp(x))
        for b in self.blocks:
            x = F.relu(x + b(x))
        return self.head(x)


def vgg(width: int = 8) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(3, width, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(width, width, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(width, 2 * width, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(2 * width * 8 * 8, 32),
        nn.ReLU(),
        nn.Dropout(0.5),
        nn.Linear(32, 10),
    )


class Swish(nn.Module):
    """A user-defined activation initwise has never heard of."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(x)


class ActMLP(nn.Module):
    """One Linear before each kind of activation, module and functional."""

    def __init__(self) -> None:
        super().__init__()
        self.relu = nn.Linear(8, 8)
        self.gelu = nn.Linear(8, 8)
        self.tanh = nn.Linear(8, 8)
        self.selu = nn.Linear(8, 8)
        self.silu_f = nn.Linear(8, 8)
        self.leaky = nn.Linear(8, 8)
        self.method = nn.Linear(8, 8)
        self.swish = nn.Linear(8, 8)
        self.norm_relu = nn.Linear(8, 8)
        self.ln = nn.LayerNorm(8)
        self.out = nn.Linear(8, 2)
        self.a_gelu, self.a_tanh, self.a_selu = nn.GELU(), nn.Tanh(), nn.SELU()
        self.a_leaky, self.a_swish = nn.LeakyReLU(0.2), Swish()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.relu(x))
        x = self.a_gelu(self.gelu(x))
        x = self.a_tanh(self.tanh(x))
        x = self.a_selu(self.selu(x))
        x = F.silu(self.silu_f(x))
        x = self.a_leaky(self.leaky(x))
        x = self.method(x).relu()
        x = self.a_swish(self.swish(x))
        x = F.relu(self.ln(self.norm_relu(x)))
        return self.out(x)


class _OwnBilinear(nn.Module):
    """A user's own bilinear layer (``einsum``): initwise knows no rule for it. Built like
    ``nn.Bilinear(4, 4, 3)`` (same parameters, same draws from torch's RNG), which initwise now
    plans."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(3, 4, 4))
        self.bias = nn.Parameter(torch.empty(3))
        bound = 1 / math.sqrt(4)
        nn.init.uniform_(self.weight, -bound, bound)
        nn.init.uniform_(self.bias, -bound, bound)

    def forward(self, x1: torch.Tensor, x2: torch.Tensor) -> torch.Tensor:
        return torch.einsum("bi,kij,bj->bk", x1, self.weight, x2) + self.bias


class WithUnknown(nn.Module):
    """A layer without a rule (a user's own bilinear layer) and a loose parameter."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 4)
        self.bil = _OwnBilinear()
        self.scale = nn.Parameter(torch.ones(3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.fc(x))
        return self.bil(h, h) * self.scale


class Tied(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.emb = nn.Embedding(50, 16, padding_idx=0)
        self.fc = nn.Linear(16, 16)
        self.head = nn.Linear(16, 50, bias=False)
        self.head.weight = self.emb.weight

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.tanh(self.fc(self.emb(x))))


def deep_mlp(depth: int = 20, width: int = 256, act: type[nn.Module] = nn.ReLU) -> nn.Sequential:
    layers: list[nn.Module] = []
    for _ in range(depth):
        layers += [nn.Linear(width, width), act()]
    return nn.Sequential(*layers)


def resnet() -> ResNet:
    torch.manual_seed(0)
    return ResNet()


def transformer() -> nn.TransformerEncoder:
    layer = nn.TransformerEncoderLayer(32, 4, 64, activation="gelu", batch_first=True)
    return nn.TransformerEncoder(layer, 3, enable_nested_tensor=False)


def width_mlp(width: int, d_in: int = 32, d_out: int = 10) -> nn.Sequential:
    """The 3-layer ReLU MLP of the μP / u-μP tests: input, hidden and readout layers at 0/2/4."""
    return nn.Sequential(
        nn.Linear(d_in, width),
        nn.ReLU(),
        nn.Linear(width, width),
        nn.ReLU(),
        nn.Linear(width, d_out),
    )
