"""The ``auto`` zoo: common networks initialized with plain ``init_model(model, seed=0)`` and no
example input, measured on a unit-variance batch (``initwise bench zoo``; tests/test_zoo.py
checks the same numbers against their bands).

Per network: output rms / input rms (logits rms for token models), the first / last weight
matrix's gradient-norm ratio under the loss ``⟨output, r⟩`` with ``r ~ N(0, 1)``, and
``diagnose``'s verdict.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from . import print_table

WIDTH = 256
DEPTH = 30


class MLP(nn.Sequential):
    """``depth`` Linear layers of ``width`` with ``act`` between them."""

    def __init__(self, act: Callable[[], nn.Module], depth: int = DEPTH, width: int = WIDTH):
        layers: list[nn.Module] = []
        for _ in range(depth - 1):
            layers += [nn.Linear(width, width), act()]
        layers.append(nn.Linear(width, width))
        super().__init__(*layers)


class FunctionalMLP(nn.Module):
    """Activations called in ``forward``: ``F.gelu`` and ``torch.tanh`` alternating."""

    def __init__(self, depth: int = DEPTH, width: int = WIDTH) -> None:
        super().__init__()
        self.layers = nn.ModuleList(nn.Linear(width, width) for _ in range(depth))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for i, layer in enumerate(self.layers[:-1]):
            x = F.gelu(layer(x)) if i % 2 == 0 else torch.tanh(layer(x))
        return self.layers[-1](x)


def swish15(x: torch.Tensor) -> torch.Tensor:
    """A plain function initwise has no record of: ``x · sigmoid(1.5 x)``."""
    return x * torch.sigmoid(1.5 * x)


class PlainFunctionMLP(FunctionalMLP):
    """A plain Python function as the activation (must be probed, not read as sigmoid)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers[:-1]:
            x = swish15(layer(x))
        return self.layers[-1](x)


class ResidualMLP(nn.Module):
    """``blocks`` unnormalized residual blocks ``x + W₂ relu(W₁ x)``."""

    def __init__(self, blocks: int = 16, width: int = WIDTH) -> None:
        super().__init__()
        self.inner = nn.ModuleList(nn.Linear(width, width) for _ in range(blocks))
        self.outer = nn.ModuleList(nn.Linear(width, width) for _ in range(blocks))
        self.head = nn.Linear(width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for a, b in zip(self.inner, self.outer, strict=True):
            x = x + b(F.relu(a(x)))
        return self.head(x)


class TinyLM(nn.Module):
    """Embedding → 2 pre-norm transformer layers → LayerNorm → head tied to the embedding."""

    def __init__(self, vocab: int = 512, d: int = 128, layers: int = 2) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, d)
        layer = nn.TransformerEncoderLayer(
            d, 4, 4 * d, dropout=0.0, activation="gelu", batch_first=True, norm_first=True
        )
        self.blocks = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(d)
        self.head = nn.Linear(d, vocab, bias=False)
        self.head.weight = self.embed.weight

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.head(self.norm(self.blocks(self.embed(ids))))


class TiedMLPLM(nn.Module):
    """Embedding → 2-layer MLP → head tied to the embedding (no norm anywhere)."""

    def __init__(self, vocab: int = 512, d: int = 128) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, d)
        self.mlp = nn.Sequential(nn.Linear(d, d), nn.ReLU(), nn.Linear(d, d))
        self.head = nn.Linear(d, vocab, bias=False)
        self.head.weight = self.embed.weight

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.head(self.mlp(self.embed(ids)))


class Block(nn.Module):
    def __init__(self, c: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c, c, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c)
        self.conv2 = nn.Conv2d(c, c, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(x + self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x))))))


class ResNetBN(nn.Module):
    """A small ResNet with BatchNorm (stem, ``blocks`` basic blocks, pooled linear head)."""

    def __init__(self, blocks: int = 4, c: int = 16, classes: int = 10) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, c, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(c)
        self.blocks = nn.Sequential(*(Block(c) for _ in range(blocks)))
        self.head = nn.Linear(c, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.blocks(F.relu(self.bn(self.stem(x))))
        return self.head(x.mean(dim=(2, 3)))


class ConvZoo(nn.Sequential):
    """Grouped, depthwise, pointwise and transposed convolutions with SiLU."""

    def __init__(self) -> None:
        super().__init__(
            nn.Conv2d(3, 32, 3, padding=1),
            nn.SiLU(),
            nn.Conv2d(32, 32, 3, padding=1, groups=4),
            nn.SiLU(),
            nn.Conv2d(32, 32, 3, padding=1, groups=32),
            nn.SiLU(),
            nn.Conv2d(32, 64, 1),
            nn.SiLU(),
            nn.ConvTranspose2d(64, 32, 4, stride=2, padding=1),
            nn.SiLU(),
            nn.Conv2d(32, 3, 3, padding=1),
        )


class PreNormTransformer(nn.Module):
    """``nn.TransformerEncoder`` (pre-norm, GELU) on continuous inputs, linear read-out."""

    def __init__(self, d: int = 64, layers: int = 4) -> None:
        super().__init__()
        layer = nn.TransformerEncoderLayer(
            d, 4, 4 * d, dropout=0.0, activation="gelu", batch_first=True, norm_first=True
        )
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.out = nn.Linear(d, d)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.encoder(x))


class LSTMNet(nn.Module):
    """A 2-layer LSTM and a linear read-out of every step."""

    def __init__(self, d: int = 64, hidden: int = 128) -> None:
        super().__init__()
        self.lstm = nn.LSTM(d, hidden, num_layers=2, batch_first=True)
        self.out = nn.Linear(hidden, d)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.lstm(x)[0])


def _hf(kind: str) -> nn.Module | None:
    try:
        import transformers as T
    except ImportError:  # pragma: no cover - the hf extra is a dev requirement
        return None
    small = dict(vocab_size=512)
    if kind == "gpt2":
        return T.GPT2LMHeadModel(T.GPT2Config(n_layer=4, n_embd=64, n_head=4, **small))
    if kind == "bert":
        return T.BertForMaskedLM(
            T.BertConfig(
                num_hidden_layers=4,
                hidden_size=64,
                num_attention_heads=4,
                intermediate_size=256,
                **small,
            )
        )
    return T.LlamaForCausalLM(
        T.LlamaConfig(
            num_hidden_layers=4,
            hidden_size=64,
            num_attention_heads=4,
            num_key_value_heads=2,
            intermediate_size=172,
            **small,
        )
    )


@dataclass(frozen=True)
class Net:
    name: str
    build: Callable[[], nn.Module | None]
    batch: Callable[[torch.Generator], Any]
    tokens: bool = False


def _vec(n: int = 256, d: int = WIDTH) -> Callable[[torch.Generator], Any]:
    return lambda g: torch.randn(n, d, generator=g)


def _ids(vocab: int = 512) -> Callable[[torch.Generator], Any]:
    return lambda g: torch.randint(0, vocab, (8, 32), generator=g)


ZOO: tuple[Net, ...] = (
    Net("MLP ReLU ×30", lambda: MLP(nn.ReLU), _vec()),
    Net("MLP GELU ×30", lambda: MLP(nn.GELU), _vec()),
    Net("MLP SiLU ×30", lambda: MLP(nn.SiLU), _vec()),
    Net("MLP tanh ×30", lambda: MLP(nn.Tanh), _vec()),
    Net("MLP sigmoid ×30", lambda: MLP(nn.Sigmoid), _vec()),
    Net("MLP softplus ×30", lambda: MLP(nn.Softplus), _vec()),
    Net("MLP F.gelu/torch.tanh ×30", FunctionalMLP, _vec()),
    Net("MLP x·sigmoid(1.5x) ×10", lambda: PlainFunctionMLP(depth=10), _vec()),
    Net("residual MLP ×16, no norm", ResidualMLP, _vec()),
    Net("tied LM, MLP, no norm", TiedMLPLM, _ids(), tokens=True),
    Net("tied LM, pre-norm transformer", TinyLM, _ids(), tokens=True),
    Net("ResNet + BatchNorm", ResNetBN, lambda g: torch.randn(16, 3, 16, 16, generator=g)),
    Net(
        "grouped/depthwise/transposed conv",
        ConvZoo,
        lambda g: torch.randn(8, 3, 16, 16, generator=g),
    ),
    Net(
        "pre-norm TransformerEncoder",
        PreNormTransformer,
        lambda g: torch.randn(8, 16, 64, generator=g),
    ),
    Net("LSTM ×2", LSTMNet, lambda g: torch.randn(8, 16, 64, generator=g)),
    Net("HF GPT-2 (4×64)", lambda: _hf("gpt2"), _ids(), tokens=True),
    Net("HF BERT (4×64)", lambda: _hf("bert"), _ids(), tokens=True),
    Net("HF Llama (4×64)", lambda: _hf("llama"), _ids(), tokens=True),
)


def _output(out: Any) -> torch.Tensor:
    if isinstance(out, torch.Tensor):
        return out
    logits = getattr(out, "logits", None)
    if logits is not None:
        return logits
    return out[0]


def measure(net: Net, init: Callable[[nn.Module], Any] | None = None, seed: int = 0) -> dict:
    """Build ``net``, initialize it (``init_model(model, seed=seed)`` unless ``init`` is given),
    and measure it (see the module docstring). None values where a network is unavailable."""
    from ..diagnostics import diagnose
    from ..torch import init_model

    torch.manual_seed(seed)  # module constructors draw torch's default init first
    model = net.build()
    if model is None:
        return {"name": net.name, "skipped": "transformers is not installed"}
    if init is None:
        init_model(model, seed=seed)
    else:
        init(model)
    g = torch.Generator().manual_seed(1000 + seed)
    batch = net.batch(g)
    model.train()
    if hasattr(model, "config"):  # HF: no dropout in the measurement
        model.eval()
    for m in model.modules():
        if isinstance(m, nn.Dropout):
            m.p = 0.0
    out = _output(model(batch))
    rms = out.detach().double().pow(2).mean().sqrt().item()
    ratio = rms if net.tokens else rms / batch.double().pow(2).mean().sqrt().item()
    r = torch.randn(out.shape, generator=g)
    model.zero_grad(set_to_none=True)
    (out * r).sum().backward()
    weights = [
        p
        for n, p in model.named_parameters()
        if p.ndim >= 2 and p.grad is not None and "embed" not in n and "wte" not in n
    ]
    weights = [p for p in weights if not _is_tied_head(model, p)]
    grad = (
        (weights[0].grad.norm() / weights[-1].grad.norm()).item()
        if len(weights) > 1 and weights[-1].grad.norm() > 0
        else math.nan
    )
    model.zero_grad(set_to_none=True)
    report = diagnose(model, batch) if not net.tokens or not hasattr(model, "config") else None
    if report is None:
        report = diagnose(model, {"input_ids": batch})
    return {
        "name": net.name,
        "out_ratio": ratio,
        "grad_ratio": grad,
        "verdict": report.verdict,
        "summary": report.summary,
    }


def _is_tied_head(model: nn.Module, p: torch.Tensor) -> bool:
    return any(isinstance(m, nn.Embedding) and m.weight is p for m in model.modules())


BANDS = {"out_ratio": (0.5, 2.0), "grad_ratio": (0.5, 2.0)}


def run(seeds: tuple[int, ...] = (0,)) -> list[dict]:
    """The zoo at ``seeds`` (the table above is seed 0's): one table per network and seed, and
    with more than one seed a summary of how many seeds fall in each band."""
    rows = [measure(net, seed=s) for net in ZOO for s in seeds]
    if len(seeds) > 1:
        _summary(rows, len(seeds))
        return rows

    def fmt(x: Any, band: tuple[float, float]) -> str:
        if x is None or (isinstance(x, float) and math.isnan(x)):
            return "—"
        mark = "" if band[0] <= x <= band[1] else " ✗"
        return f"{x:.3g}{mark}"

    print_table(
        "auto zoo: init_model(model, seed=0), no example input (✗: outside [0.5, 2])",
        ["network", "out rms / in rms", "grad first/last", "diagnose"],
        [
            [r["name"], "skipped", "", r["skipped"]]
            if "skipped" in r
            else [
                r["name"],
                fmt(r["out_ratio"], BANDS["out_ratio"]),
                fmt(r["grad_ratio"], BANDS["grad_ratio"]),
                r["verdict"],
            ]
            for r in rows
        ],
    )
    return rows


def _summary(rows: list[dict], n: int) -> None:
    """Per network over ``n`` seeds: median and range of each ratio, the seeds inside its band,
    and the seeds ``diagnose`` calls healthy."""
    by: dict[str, list[dict]] = {}
    for r in rows:
        by.setdefault(r["name"], []).append(r)

    def cell(vals: list[float], band: tuple[float, float]) -> str:
        vals = [v for v in vals if not math.isnan(v)]
        if not vals:
            return "—"
        inside = sum(band[0] <= v <= band[1] for v in vals)
        mid = sorted(vals)[len(vals) // 2]
        return f"{mid:.3g} [{min(vals):.3g}–{max(vals):.3g}] {inside}/{len(vals)}"

    table = []
    for name, rs in by.items():
        if any("skipped" in r for r in rs):
            table.append([name, "skipped", "", rs[0].get("skipped", "")])
            continue
        healthy = sum(r["verdict"] == "healthy" for r in rs)
        table.append(
            [
                name,
                cell([r["out_ratio"] for r in rs], BANDS["out_ratio"]),
                cell([r["grad_ratio"] for r in rs], BANDS["grad_ratio"]),
                f"{healthy}/{len(rs)}",
            ]
        )
    print_table(
        f"auto zoo over seeds 0–{n - 1}: median (range) and seeds inside 0.5–2",
        ["network", "out rms / in rms", "grad first/last", "diagnose healthy"],
        table,
    )
