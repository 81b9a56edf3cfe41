r"""Cross moments ``E[a·b]`` of two graph nodes that one set of weights computes from two
inputs — a Siamese or triplet network's ``enc(a) − enc(b)``, Sentence-BERT's ``|u − v|`` and
``u·v`` — for the moment walk (:mod:`initwise.torch.moments`).

The walk adds and multiplies two signals as independent, ``E[(a ± b)²] = E[a²] + E[b²] ±
2·E[a]·E[b]``. That holds over the weight draw for two outputs of *different* layers (fresh
zero-mean weights are uncorrelated with anything else), but not for two outputs of the *same*
layer: with ``y = W x + b``, ``Var[W_ij] = σ²``,

    E_W[y_a · y_b] = σ²·Σ_k x_{a,k} x_{b,k} + E[b²] = fan_in·σ²·E[x_a·x_b] + E[b²]

(the kernel of the two inputs, Neal 1996; Lee et al. 2018), and through one elementwise
activation ``E[φ(u)·φ(v)]`` for jointly Gaussian ``u``, ``v`` (Poole et al. 2016, eq. 4). Two
independent unit inputs through ``Linear, ReLU, Linear, ReLU, Linear`` at He's scale come out
with correlation ≈ 0.49 (the ReLU features' mean is shared through the weights), so
``E[(enc(a) − enc(b))²] ≈ 1.01``, not the 2 of independence: a head solved for 2 started at
output rms 0.74 of the unit it aims at.

:class:`Cross` follows the two nodes back while they are the same computation — the same
weight layer called twice, the same activation, the same reshape or slice (functions, or
``Flatten``/``Unflatten``/``Identity`` modules), sums of such, a constant factor, an L2
normalization, an average pool — and gives ``None`` where they part (then nothing but their
means ties them, and the walk's product of means stands).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
from torch import nn

from ..math.meanfield import gaussian_cross
from .graph import ADD_FUNCS, SHAPE_OPS
from .modules import kind as module_kind
from .pooling import node_pool

SHARED_KINDS = frozenset({"linear", "conv", "conv1d_hf"})
"""Layer kinds whose output a second call computes from the first call's solve."""

_SUB = frozenset({"sub", "sub_", "isub"})
_SCALED = frozenset({"mul", "mul_", "imul", "rmul", "div", "truediv", "div_", "neg"})
_PASSING = (nn.Flatten, nn.Unflatten, nn.Identity)
"""Modules that pass their input's values (reshaped)."""
_DEPTH = 100
"""How far back two nodes are followed: deeper, the pair is taken as tied only through its
means from there (each step is a few Python frames; a Siamese encoder of 400 residual blocks
without norms went past the interpreter's recursion limit at 400)."""

Mom = tuple[float, float]


class Cross:
    """``E[a·b]`` per element for two nodes of one walk pass, from their moments so far.

    ``mom``: the pass's node moments (``(E[x²], E[x])``), filled in execution order — the
    ancestors of a node being computed are all there. ``layers``: what the pass solved for each
    weight layer (:class:`initwise.torch.moments.Solved`). ``act_fn``: the elementwise function
    of an activation node's :class:`Act`."""

    def __init__(
        self,
        info: Any,
        modules: dict[str, nn.Module],
        layers: dict[str, Any],
        mom: dict[int, Mom | None],
        act_fn: Callable[[Any], Callable[[np.ndarray], np.ndarray]],
    ) -> None:
        self.nodes = info.graph.nodes
        self.info = info
        self.modules = modules
        self.layers = layers
        self.mom = mom
        self.act_fn = act_fn
        self._memo: dict[tuple[int, int], float | None] = {}

    def __call__(self, i: int, j: int) -> float | None:
        """``E[a·b]`` for nodes ``i`` and ``j``; None where nothing but their means ties them."""
        try:
            return self._cross(i, j, 0)
        except RecursionError:  # (called from deep inside the planner: the pair as untied)
            return None

    def or_means(self, i: int, j: int) -> float | None:
        """:meth:`__call__`, or ``E[a]·E[b]`` (independent), or None if a moment is unknown."""
        a, b = self.mom.get(i), self.mom.get(j)
        if a is None or b is None:
            return None
        c = self(i, j)
        return c if c is not None else a[1] * b[1]

    def _cross(self, i: int, j: int, depth: int) -> float | None:
        a, b = self.mom.get(i), self.mom.get(j)
        if a is None or b is None:
            return None
        if i == j:
            return a[0]
        key = (i, j) if i < j else (j, i)
        if key in self._memo:
            return self._memo[key]
        self._memo[key] = None  # (a cycle cannot occur in a graph; a guard all the same)
        out = self._rule(self.nodes[i], self.nodes[j], a, b, depth) if depth < _DEPTH else None
        if out is not None and not math.isfinite(out):
            out = None
        self._memo[key] = out
        return out

    def _inner(self, i: int, j: int, depth: int) -> tuple[Mom, Mom, float, bool] | None:
        """The two inputs' moments and cross moment (their means' product where they are not
        tied, flagged False)."""
        a, b = self.mom.get(i), self.mom.get(j)
        if a is None or b is None:
            return None
        c = self._cross(i, j, depth + 1)
        return (a, b, c, True) if c is not None else (a, b, a[1] * b[1], False)

    def _rule(self, ni: Any, nj: Any, a: Mom, b: Mom, depth: int) -> float | None:
        kinds, info = self.info.kinds, self.info
        if kinds[ni.idx] == "act" and kinds[nj.idx] == "act":
            act = info.acts.get(ni.idx)
            if act is None or act != info.acts.get(nj.idx):
                return None
            si = info.composite.get(ni.idx, ni.inputs[0] if ni.inputs else None)
            sj = info.composite.get(nj.idx, nj.inputs[0] if nj.inputs else None)
            inner = self._inner(si, sj, depth) if si is not None and sj is not None else None
            if inner is None or not inner[3]:
                return None  # (independent inputs: independent outputs)
            u, v, c, _ = inner
            if act.name == "linear" and act.module is None:
                return c
            return gaussian_cross(self.act_fn(act), u, v, c)
        if ni.op != nj.op or ni.target != nj.target or len(ni.inputs) != len(nj.inputs):
            return None
        if ni.op == "module":
            return self._module(ni, nj, depth)
        if ni.op != "function" or ni.args != nj.args or ni.kwargs != nj.kwargs:
            return None
        t = str(ni.target)
        if t in SHAPE_OPS or t == "getitem" or t == "contiguous":
            # the same reshape or slice of two tied tensors (a slice of one tensor at two
            # indices differs in args: its two halves are not tied — a GLU's gate and value)
            if not ni.inputs:
                return None
            inner = self._inner(ni.inputs[0], nj.inputs[0], depth)
            return inner[2] if inner is not None and inner[3] else None
        if t == "normalize" and len(ni.inputs) == 1:  # x/|x|: each side by its own norm,
            # E[â·b̂] = E[a·b]·√(E[â²]E[b̂²] / (E[a²]E[b²])) (the norm concentrates at √(D·E[x²]))
            inner = self._inner(ni.inputs[0], nj.inputs[0], depth)
            if inner is None or not inner[3] or inner[0][0] <= 0 or inner[1][0] <= 0:
                return None
            return inner[2] * math.sqrt(a[0] * b[0] / (inner[0][0] * inner[1][0]))
        if t in _SCALED and len(ni.inputs) == 1:  # x·c, x/c, −x: E[ab]·c² for one constant c
            inner = self._inner(ni.inputs[0], nj.inputs[0], depth)
            if inner is None or not inner[3]:
                return None
            c = _constant(ni.args, t)
            return inner[2] * c * c if c is not None else None
        if (t in ADD_FUNCS or t in _SUB) and len(ni.inputs) == 2:
            # (a₁ ± a₂)·(b₁ ± b₂): the four terms, tied or by their means
            sign = -1.0 if t in _SUB else 1.0
            total, tied = 0.0, False
            for p, sp in zip(ni.inputs, (1.0, sign), strict=True):
                for q, sq in zip(nj.inputs, (1.0, sign), strict=True):
                    inner = self._inner(p, q, depth)
                    if inner is None:
                        return None
                    total += sp * sq * inner[2]
                    tied = tied or inner[3]
            return total if tied else None
        if node_pool(ni, {}) == "avg" and len(ni.inputs) == 1:
            return self._averaged(ni, nj, a, b, depth)
        return None

    def _module(self, ni: Any, nj: Any, depth: int) -> float | None:
        m = self.modules.get(ni.target)
        if m is None or len(ni.inputs) != 1:
            return None
        kind = self.info.kinds[ni.idx]
        if kind == "weight":
            solved = self.layers.get(ni.target)
            if solved is None or module_kind(m) not in SHARED_KINDS or solved.zero:
                return None
            inner = self._inner(ni.inputs[0], nj.inputs[0], depth)
            if inner is None:
                return None
            (_, ma), (_, mb), c, _ = inner
            return again_product(solved, c, ma * mb)
        if node_pool(ni, self.modules) == "avg":
            return self._averaged(ni, nj, self.mom[ni.idx], self.mom[nj.idx], depth)
        if isinstance(m, _PASSING) or (isinstance(m, nn.Dropout) and not m.training):
            inner = self._inner(ni.inputs[0], nj.inputs[0], depth)  # (a reshape module)
            return inner[2] if inner is not None and inner[3] else None
        return None

    def _averaged(self, ni: Any, nj: Any, a: Mom | None, b: Mom | None, depth: int) -> float | None:
        """An average pool of two tied maps: it keeps of their covariance the share it keeps of
        each one's variance, ``Cov′ = Cov·√(Var′_a·Var′_b / (Var_a·Var_b))``, and their means
        pass. (Two inputs' maps are not aligned, so the pool keeps all of their cross moment
        in the infinite-width limit while each map keeps only part of its own; taken so, a
        Siamese CNN's pooled pair came out equal — their difference's E[x²] 10⁻⁸ and the head
        after it at gain 7,026 — where finite width leaves 0.003: this share is the milder
        error, and the check on an example input says what arrives.)"""
        inner = self._inner(ni.inputs[0], nj.inputs[0], depth)
        if inner is None or not inner[3] or a is None or b is None:
            return None
        (sa, ma), (sb, mb), c, _ = inner
        va, vb = sa - ma * ma, sb - mb * mb
        va2, vb2 = a[0] - a[1] ** 2, b[0] - b[1] ** 2
        if min(va, vb) <= 0 or min(va2, vb2) < 0:
            return None
        return (c - ma * mb) * math.sqrt(va2 * vb2 / (va * vb)) + a[1] * b[1]


def again_product(solved: Any, product: float, means: float) -> float:
    """``E[y_a·y_b]`` of a weight layer called on inputs with ``E[x_a·x_b] = product`` and
    ``E[x_a]·E[x_b] = means``, its weights as its first call solved them (``a = b``: its output's
    ``E[y²]``): ``(q − σ_b²)·P/E[x²]₁ + σ_b² + b²``, ``P`` the product (its covariance, for
    centered weights)."""
    eff = product - means if solved.centered else product
    return (
        (solved.q - solved.bias_var) * eff / solved.effective
        + solved.bias_var
        + solved.bias_mean**2
    )


def _constant(args: tuple, t: str) -> float | None:
    if t == "neg":
        return 1.0
    nums = [x for x in args if isinstance(x, (int, float)) and not isinstance(x, bool)]
    if len(nums) != 1:
        return None
    c = float(nums[0])
    if t.startswith("div") or t == "truediv":
        return 1.0 / c if c != 0 else None
    return c
