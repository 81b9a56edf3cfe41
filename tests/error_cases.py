"""Every bad input initwise was tried with, and the error it must give.

One list feeds both ``tests/test_errors.py`` (each case must raise exactly this) and
``docs/errors.md`` (``python -m tests.error_cases`` writes it; a test checks it is current).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Case:
    area: str
    bad_input: str
    call: Callable[[], Any]
    exc: type[BaseException]
    match: str  # regular expression the message must contain
    fix: str  # what the message tells the user to do


class CLIError(Exception):
    """The ``initwise`` command exited non-zero; the message is what it printed on stderr."""


def _cli(*argv: str, env: dict[str, str] | None = None) -> Callable[[], Any]:
    def call() -> Any:
        import contextlib
        import io
        import os

        from initwise.cli import main

        err = io.StringIO()
        old = {k: os.environ.get(k) for k in (env or {})}
        os.environ.update(env or {})
        try:
            with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
                try:
                    code = main(list(argv))
                except SystemExit as exc:  # argparse
                    code = exc.code
        finally:
            for k, v in old.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
        if code:
            raise CLIError(err.getvalue().strip().splitlines()[-1])
        return code

    return call


def _pyfile(text: str, name: str = "facs.py") -> str:
    """Write a module into a fresh temporary folder; return its path."""
    import os
    import tempfile

    path = os.path.join(tempfile.mkdtemp(prefix="initwise-err-"), name)
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    return path


_MLP = "from torch import nn\ndef make():\n    return nn.Sequential(nn.Linear(4, 4), nn.ReLU())\n"


def _cli_file(*argv: str, text: str = _MLP, env: dict[str, str] | None = None):
    def call() -> Any:
        path = _pyfile(text)
        args = [a.replace("{F}", path).replace("{D}", path.rsplit("/", 1)[0]) for a in argv]
        return _cli(*args, env=env)()

    return call


def _plan_entry(**change: Any) -> Callable[[], Any]:
    def call() -> Any:
        from torch import nn

        import initwise.torch as it
        from initwise.plan import Plan

        d = it.plan(nn.Linear(8, 8)).to_dict()
        d["entries"][0].update(change)
        return Plan.from_dict(d)

    return call


def _u_mup_on(kind: str) -> Callable[[], Any]:
    def call() -> Any:
        from torch import nn

        import initwise.torch as it

        if kind == "mha":
            m = nn.Sequential(nn.Linear(8, 8))
            m.attn = nn.MultiheadAttention(8, 2)
        elif kind == "outside":

            class Decoder(nn.Module):  # (the encoder's weight read again by a function)
                def __init__(self) -> None:
                    super().__init__()
                    self.enc = nn.Linear(8, 4)

                def forward(self, x: Any) -> Any:
                    return self.enc(x) @ self.enc.weight

            return it.plan(Decoder(), "u-mup", example_input=__import__("torch").randn(2, 8))
        else:
            m = nn.Sequential(nn.Embedding(10, 8), nn.Linear(8, 10, bias=False))
            m[1].weight = m[0].weight
        return it.plan(m, "u-mup")

    return call


def _mup_functional_tied() -> Any:
    import torch
    from torch import nn
    from torch.nn import functional as F

    import initwise.torch as it

    class LM(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.emb = nn.Embedding(10, 32)
            self.ln = nn.LayerNorm(32)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return F.linear(self.ln(self.emb(x)), self.emb.weight)

    return it.plan(LM(), it.MuP(base_width=8))


def _apply_entry(**change: Any) -> Callable[[], Any]:
    def call() -> Any:
        from torch import nn

        import initwise.torch as it
        from initwise.plan import Plan

        m = nn.Linear(8, 8)
        d = it.plan(m).to_dict()
        d["entries"][0].update(change)
        return Plan.from_dict(d).apply(m, seed=0)

    return call


def _bin() -> str:
    path = _pyfile("", "plan.bin")
    with open(path, "wb") as f:
        f.write(bytes(range(256)) * 4)
    return path


def _deep_json() -> Any:
    from initwise.plan import Plan

    return Plan.from_json("[" * 100_000 + "]" * 100_000)


def _torch():
    import torch

    return torch


def _it():
    import initwise.torch as it

    return it


def _plan_json(mutate: Callable[[dict], Any]) -> Callable[[], Any]:
    def call() -> Any:
        from initwise.plan import Plan

        d = _it().plan(_torch().nn.Linear(4, 6)).to_dict()
        out = mutate(d)
        return Plan.from_json(out if isinstance(out, str) else json.dumps(out))

    return call


def _with_env(name: str, value: str, call: Callable[[], Any]) -> Callable[[], Any]:
    def run() -> Any:
        import os

        old = os.environ.get(name)
        os.environ[name] = value
        try:
            return call()
        finally:
            if old is None:
                del os.environ[name]
            else:
                os.environ[name] = old

    return run


def _sample_one() -> Any:
    from initwise import sampling, schemes

    return sampling.sample(schemes.normal(), (4,), seed=0, name="w")


def _sparse_param() -> Any:
    torch = _torch()
    m = torch.nn.Module()
    m.w = torch.nn.Parameter(torch.randn(4, 4).to_sparse())
    return _it().init_model(m, seed=0, overrides={"w": "normal"})


def _diagnose_inference() -> Any:
    torch = _torch()
    with torch.inference_mode():
        m = torch.nn.Sequential(torch.nn.Linear(4, 4))
    diagnose = __import__("initwise.diagnostics", fromlist=["diagnose"]).diagnose
    return diagnose(m, torch.randn(8, 4))


def _inference_model() -> Any:
    torch = _torch()
    with torch.inference_mode():
        m = torch.nn.Linear(4, 4)
    return _it().init_model(m, seed=0)


def _apply_mismatch() -> Any:
    torch = _torch()
    _it().plan(torch.nn.Linear(3, 3)).apply(torch.nn.Sequential(torch.nn.Linear(3, 3)), seed=0)


def _apply_shape() -> Any:
    torch = _torch()
    _it().plan(torch.nn.Linear(3, 3)).apply(torch.nn.Linear(4, 3), seed=0)


def _apply_int_param() -> Any:
    torch = _torch()
    m = torch.nn.Linear(3, 3)
    p = _it().plan(m)
    m.weight = torch.nn.Parameter(torch.zeros(3, 3, dtype=torch.int64), requires_grad=False)
    p.apply(m, seed=0)


def _meta(build: Callable[[], Any]) -> Callable[[], Any]:
    def call() -> Any:
        torch = _torch()
        with torch.device("meta"):
            m = build()
        _it().materialize(m, seed=0)

    return call


def _with_buffer() -> Any:
    torch = _torch()

    class M(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = torch.nn.Linear(2, 2)
            self.register_buffer("freqs", torch.arange(4.0))

    return M()


def _diagnose(batch: Callable[[], Any], **kw: Any) -> Callable[[], Any]:
    def call() -> Any:
        from initwise.diagnostics import diagnose

        torch = _torch()
        m = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.ReLU())
        return diagnose(m, batch(), **kw)

    return call


def _breaks_its_backward() -> Any:
    from initwise.diagnostics import diagnose

    torch = _torch()

    class Writes(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a = torch.nn.Linear(4, 4)

        def forward(self, x: Any) -> Any:
            h = torch.sigmoid(self.a(x))
            return h.mul_(2.0)  # (sigmoid's backward needs its output)

    return diagnose(Writes(), torch.ones(8, 4))


def _overflow() -> Any:
    from initwise.diagnostics import diagnose

    torch = _torch()
    m = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.Linear(4, 4))
    with torch.no_grad():
        m[0].weight.fill_(1e30)
        m[1].weight.fill_(1e30)
    diagnose(m, torch.ones(2, 4))


def _lsuv(batch: Callable[[], Any], **kw: Any) -> Callable[[], Any]:
    def call() -> Any:
        torch = _torch()
        m = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.ReLU(), torch.nn.Linear(4, 4))
        return _it().lsuv(m, batch(), **kw)

    return call


def _apply_linear(**kw: Any) -> Callable[[], Any]:
    """A plan of ``nn.Linear(2, 2)`` applied to another with ``kw`` (``seed=0`` unless given)."""

    def call() -> Any:
        nn = _torch().nn
        return _it().plan(nn.Linear(2, 2)).apply(nn.Linear(2, 2), **{"seed": 0, **kw})

    return call


def _complex(scheme: str, lsuv: bool = False) -> Callable[[], Any]:
    """A complex ``nn.Linear(4, 4)`` given ``scheme`` by an override, or run through LSUV."""

    def call() -> Any:
        torch = _torch()
        from initwise import schemes as S

        m = torch.nn.Linear(4, 4, dtype=torch.cfloat)
        if lsuv:
            return _it().lsuv(m, torch.randn(8, 4, dtype=torch.cfloat))
        return _it().init_model(m, overrides={"weight": getattr(S, scheme)()})

    return call


def _exported_program() -> Any:
    torch = _torch()
    ep = torch.export.export(torch.nn.Linear(4, 4), (torch.randn(2, 4),))
    return _it().plan(ep)


def _exported_guard() -> Any:
    from initwise.diagnostics import diagnose

    torch = _torch()
    m = torch.nn.Sequential(torch.nn.Linear(8, 4), torch.nn.Tanh())
    gm = torch.export.export(m, (torch.randn(2, 8),)).module()
    return diagnose(gm, torch.randn(32, 8))


def _scripted_block() -> Any:
    torch = _torch()
    block = torch.jit.script(torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.ReLU()))
    return _it().plan(torch.nn.Sequential(torch.nn.Linear(4, 4), block))


def _override(spec: dict) -> Callable[[], Any]:
    def call() -> Any:
        torch = _torch()
        m = torch.nn.Sequential(
            torch.nn.Conv2d(3, 4, 3),
            torch.nn.ReLU(),
            torch.nn.Flatten(),
            torch.nn.LazyLinear(2) if False else torch.nn.Linear(4, 2),
        )
        return _it().plan(m, overrides=spec)

    return call


def _without(module: str, code: str) -> Callable[[], Any]:
    """Run ``code`` in a subprocess where ``module`` can not be imported; re-raise its error."""

    def call() -> Any:
        import subprocess
        import sys

        prog = (
            f"import sys; sys.modules[{module!r}] = None\n"
            "try:\n"
            + "".join(f"    {line}\n" for line in code.splitlines())
            + "except ImportError as e:\n    print('ImportError:', e); sys.exit(3)\n"
        )
        r = subprocess.run([sys.executable, "-c", prog], capture_output=True, text=True)
        if r.returncode == 3:
            raise ImportError(r.stdout.split("ImportError:", 1)[1].strip())
        raise AssertionError(f"no ImportError: rc={r.returncode} {r.stderr[-300:]}")

    return call


def _np(name: str, *a: Any, **kw: Any) -> Callable[[], Any]:
    def call() -> Any:
        import initwise.numpy as iw

        return getattr(iw, name)(*a, **kw)

    return call


def _s(name: str, *a: Any, **kw: Any) -> Callable[[], Any]:
    def call() -> Any:
        from initwise import schemes as S

        return getattr(S, name)(*a, **kw)

    return call


def _t(name: str, tensor: Callable[[], Any], *a: Any, **kw: Any) -> Callable[[], Any]:
    def call() -> Any:
        return getattr(_it(), name)(tensor(), *a, **kw)

    return call


def _fans(*a: Any, **kw: Any) -> Callable[[], Any]:
    def call() -> Any:
        from initwise.math import fans

        return fans(*a, **kw)

    return call


def _gain(*a: Any, **kw: Any) -> Callable[[], Any]:
    def call() -> Any:
        from initwise.math import gain

        return gain(*a, **kw)

    return call


NAN, INF = math.nan, math.inf

CASES: list[Case] = [
    # fans
    Case(
        "fans",
        "1-D shape (a bias)",
        _fans((5,)),
        ValueError,
        "fewer than 2 dimensions",
        "initialize biases with zeros/constant/normal, or let the planner do it",
    ),
    Case("fans", "0-D shape", _fans(()), ValueError, "fewer than 2 dimensions", "as above"),
    Case(
        "fans",
        "zero-sized dimension",
        _fans((3, 0)),
        ValueError,
        "zero-sized dimension",
        "give the real shape",
    ),
    Case(
        "fans",
        "negative dimension",
        _fans((3, -1)),
        ValueError,
        r"shape\[1\] must be >= 0",
        "give the real shape",
    ),
    Case(
        "fans",
        "out_channels not divisible by groups",
        _fans((10, 4, 3), "conv", groups=3),
        ValueError,
        "not divisible by groups=3",
        "check the layer's groups",
    ),
    Case(
        "fans",
        "packed rows not divisible into q/k/v",
        _fans((10, 4), "qkv"),
        ValueError,
        "can not be split into 3",
        "check the hidden size",
    ),
    Case(
        "fans",
        "unknown kind",
        _fans((3, 3), "dense"),
        ValueError,
        "kind must be one of",
        "use a listed kind",
    ),
    Case(
        "fans",
        "groups = 0",
        _fans((3, 3), "conv", groups=0),
        ValueError,
        "groups must be an integer >= 1",
        "use groups >= 1",
    ),
    # gains
    Case(
        "gains",
        "unknown activation name",
        _gain("gleu"),
        ValueError,
        "unknown activation 'gleu'; known names:",
        "use a listed name or pass the callable",
    ),
    Case(
        "gains",
        "NaN activation parameter",
        _gain("leaky_relu", NAN),
        ValueError,
        "param must be finite",
        "pass a finite slope",
    ),
    Case(
        "gains",
        "parameter for an activation without one",
        _gain("relu", 0.1),
        ValueError,
        "takes no param",
        "drop param",
    ),
    Case(
        "gains",
        "unknown method",
        _gain("relu", method="sideways"),
        ValueError,
        "method must be one of",
        "forward, backward or torch",
    ),
    Case(
        "gains",
        "non-elementwise callable",
        _gain(lambda x: x[:3]),
        ValueError,
        "must be applied elementwise",
        "pass an elementwise function",
    ),
    Case(
        "gains",
        "activation that is zero everywhere",
        _gain(lambda x: 0 * x),
        ValueError,
        "zero on Gaussian input",
        "no gain exists",
    ),
    # schemes
    Case(
        "schemes",
        "negative std",
        _s("normal", 0.0, -1.0),
        ValueError,
        "std must be >= 0",
        "pass std >= 0",
    ),
    Case(
        "schemes",
        "NaN std",
        _s("normal", 0.0, NAN),
        ValueError,
        "std must be finite",
        "pass a finite std",
    ),
    Case(
        "schemes",
        "infinite gain",
        _s("xavier_uniform", INF),
        ValueError,
        "gain must be finite",
        "pass a finite gain",
    ),
    Case(
        "schemes",
        "zero gain",
        _s("orthogonal", 0.0),
        ValueError,
        "gain must be > 0",
        "pass gain > 0",
    ),
    Case(
        "schemes",
        "unknown orthogonal method",
        _s("orthogonal", 1.0, "svd"),
        ValueError,
        r"orthogonal: method must be one of 'reflectors', 'qr'",
        "pass method='reflectors' (default) or 'qr' (torch's algorithm)",
    ),
    Case(
        "schemes",
        "uniform a > b",
        _s("uniform", 2.0, 1.0),
        ValueError,
        r"a \(low\) = 2.0 must be <= b \(high\) = 1.0; swap them",
        "swap a and b",
    ),
    Case(
        "schemes",
        "truncation a >= b",
        _s("trunc_normal", 0, 1, 1, -1),
        ValueError,
        "lower bound a = 1.0 must be < upper bound b = -1.0",
        "swap a and b",
    ),
    Case(
        "schemes",
        "truncation bound NaN",
        _s("trunc_normal", 0, 1, float("nan"), 1),
        ValueError,
        "a is NaN; pass a number",
        "give a number, or ±inf for a one-sided window",
    ),
    Case(
        "schemes",
        "unknown mode",
        _s("kaiming_normal", 0, "fan_sum"),
        ValueError,
        "mode must be one of 'fan_in', 'fan_out', 'fan_avg'",
        "use a listed mode",
    ),
    Case(
        "schemes",
        "unknown distribution",
        _s("variance_scaling", 1, "fan_in", "gauss"),
        ValueError,
        "distribution must be one of",
        "use a listed distribution",
    ),
    Case(
        "schemes",
        "unknown nonlinearity",
        _s("kaiming_normal", 0, "fan_in", "relux"),
        ValueError,
        "unknown activation 'relux'",
        "use a listed name",
    ),
    Case(
        "schemes",
        "sparsity outside [0, 1)",
        _s("sparse", 1.5),
        ValueError,
        r"in \[0, 1\)",
        "pass a fraction",
    ),
    Case(
        "schemes",
        "non-finite constant",
        _s("constant", INF),
        ValueError,
        "value must be finite",
        "pass a finite value",
    ),
    Case(
        "schemes",
        "boolean where a number is needed",
        _s("normal", 0.0, True),
        TypeError,
        "std must be a real number",
        "pass a number",
    ),
    Case(
        "schemes",
        "unknown scheme type in a dict",
        _s("from_dict", {"type": "magic"}),
        ValueError,
        "unknown scheme type 'magic'; known:",
        "use a listed type",
    ),
    Case(
        "schemes",
        "unknown field in a scheme dict",
        _s("from_dict", {"type": "normal", "sigma": 1}),
        ValueError,
        "has no field 'sigma'; fields:",
        "use the listed fields",
    ),
    Case(
        "schemes",
        "unknown preset name",
        _s("resolve", "he"),
        ValueError,
        "unknown scheme 'he'; presets:",
        "use a listed preset",
    ),
    # numpy back end
    Case(
        "numpy",
        "no rng given",
        _np("normal", (3,), rng=None),
        TypeError,
        "never draws from global random state",
        "pass rng=0 or a Generator",
    ),
    Case(
        "numpy",
        "integer dtype",
        _np("normal", (3,), rng=0, dtype=np.int32),
        TypeError,
        "dtype must be a floating dtype",
        "use np.float32",
    ),
    Case(
        "numpy",
        "orthogonal of a vector",
        _np("orthogonal", (3,), rng=0),
        ValueError,
        "needs a tensor with >= 2 dimensions",
        "use a matrix",
    ),
    Case(
        "numpy",
        "eye of a 3-D shape",
        _np("eye", (3, 3, 3)),
        ValueError,
        "eye: needs a tensor with 2 dimensions",
        "use a matrix",
    ),
    # torch back end
    Case(
        "torch",
        "integer tensor",
        _t("normal_", lambda: _torch().zeros(3, dtype=_torch().int64)),
        TypeError,
        r"dtype torch.int64.*tensor.float\(\)",
        "convert with tensor.float()",
    ),
    Case(
        "torch",
        "bool tensor",
        _t("normal_", lambda: _torch().zeros(3, dtype=_torch().bool)),
        TypeError,
        "floating-point tensor",
        "convert with tensor.float()",
    ),
    Case(
        "torch",
        "not a tensor",
        _t("normal_", lambda: np.zeros(3)),
        TypeError,
        "expected a torch.Tensor",
        "pass a tensor",
    ),
    Case(
        "torch",
        "fan-based init of a 1-D tensor",
        _t("xavier_uniform_", lambda: _torch().empty(3)),
        ValueError,
        "fewer than 2 dimensions",
        "as for fans",
    ),
    Case(
        "torch",
        "dirac with groups not dividing dim 0",
        _t("dirac_", lambda: _torch().empty(5, 3, 3), 2),
        ValueError,
        "divisible by groups=2",
        "check groups",
    ),
    Case(
        "torch",
        "delta-orthogonal with out < in",
        _t("delta_orthogonal_", lambda: _torch().empty(2, 4, 3)),
        ValueError,
        "must be >= in_channels",
        "use orthogonal",
    ),
    Case(
        "torch",
        "zero-element tensor",
        _t("xavier_normal_", lambda: _torch().empty(0, 4)),
        UserWarning,
        "zero-element tensors is a no-op",
        "(a warning, as torch)",
    ),
    # planner and plans
    Case(
        "planner",
        "unknown policy",
        lambda: _it().plan(_torch().nn.Linear(2, 2), "kaiming"),
        ValueError,
        "unknown policy 'kaiming'; policies: auto",
        "use a listed policy",
    ),
    Case(
        "planner",
        "lazy module that has not run",
        lambda: _it().plan(_torch().nn.Sequential(_torch().nn.LazyLinear(4))),
        ValueError,
        r"plan: 0\.weight, 0\.bias belong to lazy modules that have not run yet",
        "run the model once on a batch first",
    ),
    Case(
        "diagnose",
        "a model built under torch.inference_mode()",
        _diagnose_inference,
        ValueError,
        "diagnose: parameter '0.weight' and 1 more are inference tensors .* autograd cannot use",
        "build the model outside inference mode",
    ),
    Case(
        "diagnose",
        "lazy module that has not run",
        lambda: __import__("initwise.diagnostics", fromlist=["diagnose"]).diagnose(
            _torch().nn.Sequential(_torch().nn.LazyLinear(4)), _torch().randn(8, 3)
        ),
        ValueError,
        "diagnose: 0.weight, 0.bias belong to lazy modules",
        "run the model once first (diagnose does not change the model)",
    ),
    Case(
        "planner",
        "not a module",
        lambda: _it().plan("model"),
        TypeError,
        "must be a torch.nn.Module",
        "pass the model",
    ),
    Case(
        "planner",
        "lsuv policy without a batch",
        lambda: _it().plan(_torch().nn.Linear(2, 2), "lsuv"),
        ValueError,
        "policy 'lsuv' needs a batch",
        "pass example_input=batch",
    ),
    Case(
        "planner",
        "forget_bias not finite",
        lambda: _it().plan(_torch().nn.LSTM(4, 8), forget_bias=float("nan")),
        ValueError,
        "forget_bias must be a finite number, got nan",
        "pass a finite number",
    ),
    Case(
        "planner",
        "negative std (gpt2's base std)",
        lambda: _it().plan(_torch().nn.Linear(4, 8), "gpt2", std=-0.02),
        ValueError,
        "std must be a finite number ≥ 0, got -0.02",
        "pass a std ≥ 0",
    ),
    Case(
        "planner",
        "example input the model cannot run (wrong width)",
        lambda: _it().plan(
            _torch().nn.Sequential(_torch().nn.Linear(4, 8)), example_input=_torch().ones(3, 5)
        ),
        ValueError,
        r"example_input: the model could not run on it \(shapes \(3, 5\)\)",
        "pass an input its forward accepts",
    ),
    Case(
        "planner",
        "example input with no examples",
        lambda: _it().plan(_torch().nn.Linear(4, 8), example_input=_torch().randn(0, 4)),
        ValueError,
        "example_input: its floating-point tensors have no elements",
        "pass at least one example",
    ),
    Case(
        "planner",
        "strict given as a string",
        lambda: _it().plan(_torch().nn.Linear(4, 8), strict="yes"),
        TypeError,
        "strict must be True or False, got 'yes'",
        "pass a bool",
    ),
    Case(
        "planner",
        "example input with NaN",
        lambda: _it().plan(
            _torch().nn.Linear(4, 8), example_input=_torch().full((3, 4), float("nan"))
        ),
        ValueError,
        "example_input: its first floating-point tensor .* has non-finite values",
        "pass a finite batch",
    ),
    Case(
        "planner",
        "override pattern that is not a string",
        _override({3: "zeros"}),
        TypeError,
        "overrides: a pattern must be a glob string",
        "use a glob such as '*.bias'",
    ),
    Case(
        "planner",
        "override pattern matching nothing",
        _override({"fcc.*": "zeros"}),
        ValueError,
        "matches no parameter",
        "fix the pattern",
    ),
    Case(
        "planner",
        "override that does not fit the shape",
        _override({"0.weight": "eye"}),
        ValueError,
        "does not fit parameter '0.weight'",
        "choose a scheme for that shape",
    ),
    Case(
        "planner",
        "override with bad arguments",
        _override({"3.weight": {"scheme": "normal", "sigma": 1}}),
        TypeError,
        "scheme 'normal'",
        "use the preset's argument names",
    ),
    Case(
        "plan JSON",
        "not JSON",
        _plan_json(lambda d: "not json"),
        ValueError,
        "could not be parsed",
        "pass the file initwise wrote",
    ),
    Case(
        "plan JSON",
        "another format",
        _plan_json(lambda d: {**d, "format": "x"}),
        ValueError,
        "not an initwise plan",
        "pass an initwise plan",
    ),
    Case(
        "plan JSON",
        "unsupported version",
        _plan_json(lambda d: {**d, "version": 99}),
        ValueError,
        "version 99 is not supported",
        "re-plan with this version",
    ),
    Case(
        "plan JSON",
        "entry without a shape",
        _plan_json(lambda d: {**d, "entries": [{"name": "a"}]}),
        ValueError,
        "missing key 'shape'",
        "re-plan",
    ),
    Case(
        "plan JSON",
        "unknown key in an entry",
        _plan_json(lambda d: {**d, "entries": [{**d["entries"][0], "bogus": 1}]}),
        ValueError,
        "unknown keys",
        "re-plan",
    ),
    Case(
        "plan JSON",
        "two entries for one parameter",
        _plan_json(lambda d: {**d, "entries": [d["entries"][0], d["entries"][0]]}),
        ValueError,
        "two entries",
        "re-plan",
    ),
    Case(
        "plan JSON",
        "non-positive fan",
        _plan_json(lambda d: {**d, "entries": [{**d["entries"][0], "fan_in": -1}]}),
        ValueError,
        "fans must be finite and > 0",
        "re-plan",
    ),
    # apply
    Case(
        "apply",
        "a model built under torch.inference_mode()",
        _inference_model,
        RuntimeError,
        "parameter 'weight': an inference tensor .* nothing was written — call this inside",
        "call it inside inference mode, or build the model outside it",
    ),
    Case(
        "apply",
        "an override for a sparse parameter",
        _sparse_param,
        TypeError,
        "parameter 'w': tensor has layout torch.sparse_coo; initializers fill dense",
        "initialize a dense tensor and convert it",
    ),
    Case(
        "apply",
        "plan for another model",
        _apply_mismatch,
        ValueError,
        "plan does not match the model.*make a new plan",
        "plan this model",
    ),
    Case(
        "apply",
        "parameter of another shape",
        _apply_shape,
        ValueError,
        r"parameter 'weight' has shape \(3, 4\) but the plan says \(3, 3\)",
        "plan this model",
    ),
    Case(
        "apply",
        "integer parameter",
        _apply_int_param,
        TypeError,
        "parameter 'weight'.*int64",
        "convert the parameter",
    ),
    Case(
        "apply",
        "seed not an int",
        _apply_linear(seed="0"),
        TypeError,
        "seed must be an int",
        "pass an int",
    ),
    Case(
        "planner",
        "a torch.export ExportedProgram instead of its module",
        _exported_program,
        TypeError,
        r"ExportedProgram; pass program.module\(\)",
        "pass program.module() (its tensors are the program's)",
    ),
    Case(
        "diagnose",
        "a batch a torch.export'ed module's shape guards refuse",
        _exported_guard,
        ValueError,
        "could not run on the batch .* Guard failed: .* export with dynamic shapes",
        "give a batch of the exported shapes, or export with torch.export.Dim",
    ),
    Case(
        "planner",
        "a TorchScript block inside an eager model",
        _scripted_block,
        TypeError,
        "submodule '1' is a TorchScript module",
        "plan with the eager block, then torch.jit.script it",
    ),
    Case(
        "apply",
        "orthogonal override on a complex weight",
        _complex("orthogonal"),
        ValueError,
        "orthogonal can not fill a complex tensor",
        "give it a normal, uniform or variance-scaling scheme",
    ),
    Case(
        "lsuv",
        "a complex model",
        _complex("", lsuv=True),
        TypeError,
        "lsuv: parameter 'weight' is complex",
        "initialize it with init_model and leave LSUV out",
    ),
    Case(
        "apply",
        "unknown engine",
        _apply_linear(engine="jax"),
        ValueError,
        "engine must be 'stream' or 'torch'",
        "use stream or torch",
    ),
    Case(
        "apply",
        "device that is not a device",
        _apply_linear(device="gpu0"),
        ValueError,
        "device must be a torch device such as 'cpu'",
        "name a torch device",
    ),
    Case(
        "apply",
        "device other than the model's (not a meta-device model)",
        _apply_linear(device="meta"),
        ValueError,
        "only says where a meta-device model is materialized; this model's parameters are on cpu",
        "move the model with model.to first, or leave device out",
    ),
    Case(
        "apply",
        "atomic given as a string",
        _apply_linear(atomic="no"),
        TypeError,
        "atomic must be True or False, got 'no'",
        "pass a bool",
    ),
    Case(
        "apply",
        "threads=0",
        _apply_linear(threads=0),
        ValueError,
        "threads must be a whole number >= 1, got 0",
        "give a positive count or leave it out",
    ),
    Case(
        "apply",
        "meta model with a parameter left as is",
        _meta(lambda: __import__("tests.models", fromlist=["x"]).WithUnknown()),
        ValueError,
        "meta device and the plan leaves",
        "give it a scheme with overrides",
    ),
    Case(
        "apply",
        "meta model with a buffer initwise can not know",
        _meta(_with_buffer),
        ValueError,
        "buffers freqs are on the meta device",
        "create it on a real device",
    ),
    Case(
        "apply",
        "INITWISE_KERNEL set to an unknown kernel",
        _with_env("INITWISE_KERNEL", "fortran", lambda: _sample_one()),
        ValueError,
        "INITWISE_KERNEL must be 'numba' or 'numpy'",
        "unset it or pick numba/numpy",
    ),
    # diagnose and LSUV
    Case(
        "diagnose",
        "jacobian given as a string",
        lambda: __import__("initwise.diagnostics", fromlist=["diagnose"]).diagnose(
            _torch().nn.Linear(4, 4), _torch().randn(8, 4), jacobian="yes"
        ),
        TypeError,
        "diagnose: jacobian must be True or False, got 'yes'",
        "pass a bool",
    ),
    Case(
        "lsuv",
        "orthogonal given as a string",
        lambda: _it().lsuv(_torch().nn.Linear(4, 4), _torch().randn(8, 4), orthogonal="no"),
        TypeError,
        "lsuv: orthogonal must be True or False, got 'no'",
        "pass a bool",
    ),
    Case(
        "policy",
        "NormalizeInput(eps=-1)",
        lambda: _it().NormalizeInput(eps=-1),
        ValueError,
        "NormalizeInput: eps must be a finite number >= 0",
        "give eps >= 0",
    ),
    Case(
        "diagnose",
        "NaN in the batch",
        _diagnose(lambda: _torch().full((2, 4), NAN)),
        ValueError,
        "non-finite values",
        "clean the data",
    ),
    Case(
        "diagnose",
        "batch of the wrong shape",
        _diagnose(lambda: _torch().ones(2, 5)),
        ValueError,
        r"could not run on the batch \(shapes \(2, 5\)\)",
        "fix the shape",
    ),
    Case(
        "diagnose",
        "batch that is not a tensor",
        _diagnose(lambda: [1, 2]),
        ValueError,
        "batch must be a tensor",
        "pass tensors",
    ),
    Case(
        "diagnose",
        "activations overflow (Inf)",
        _overflow,
        ValueError,
        "layer '1' produced non-finite values",
        "re-initialize",
    ),
    Case(
        "diagnose",
        "loss_fn returning a vector",
        _diagnose(lambda: _torch().ones(2, 4), loss_fn=lambda y: y),
        ValueError,
        "loss_fn must return a scalar",
        "reduce the loss",
    ),
    Case(
        "diagnose",
        "a forward that writes in place into what its backward needs (HF RWKV's state in eval)",
        _breaks_its_backward,
        ValueError,
        "the model's backward pass failed",
        "run it as it trains (train=True) or pass use_cache=False",
    ),
    Case(
        "diagnose",
        "Jacobian of a large model",
        lambda: __import__("initwise.diagnostics", fromlist=["diagnose"]).diagnose(
            _torch().nn.Linear(2048, 2048), _torch().ones(2, 2048), jacobian=True
        ),
        ValueError,
        "is for small models",
        "use a smaller input",
    ),
    Case(
        "lsuv",
        "Inf in the batch",
        _lsuv(lambda: _torch().full((2, 4), INF)),
        ValueError,
        "non-finite values",
        "clean the data",
    ),
    Case(
        "lsuv",
        "layer with constant output",
        _lsuv(lambda: _torch().zeros(8, 4)),
        ValueError,
        "output has std 0",
        "use a larger batch or another init",
    ),
    Case(
        "lsuv",
        "tolerance 0",
        _lsuv(lambda: _torch().ones(2, 4), tol=0),
        ValueError,
        "LSUV needs tol > 0",
        "pass tol > 0",
    ),
    Case(
        "lsuv",
        "tolerance NaN",
        _lsuv(lambda: _torch().ones(2, 4), tol=float("nan")),
        ValueError,
        "lsuv: tol must be finite, got nan",
        "pass a finite tolerance (NaN compared False: every layer ran max_iter)",
    ),
    Case(
        "diagnose",
        "seed beyond torch's range",
        _diagnose(lambda: _torch().ones(2, 4), seed=2**64),
        ValueError,
        r"diagnose: seed must be in \[-2\*\*63, 2\*\*64\)",
        "use a smaller seed",
    ),
    # optional dependencies
    Case(
        "dependencies",
        "torch missing",
        _without("torch", "import initwise.torch"),
        ImportError,
        r"needs PyTorch.*pip install 'initwise\[torch\]'",
        "install the extra",
    ),
    Case(
        "dependencies",
        "matplotlib missing",
        _without(
            "matplotlib", ("from initwise.experiments.common import figure\nfigure('/tmp/x.png')")
        ),
        ImportError,
        r"pip install 'initwise\[plot\]'",
        "install the extra",
    ),
    Case(
        "dependencies",
        "mnist1d missing",
        _without(
            "mnist1d",
            (
                "import os, tempfile; os.environ['INITWISE_CACHE'] = tempfile.mkdtemp()\n"
                "from initwise.experiments.common import mnist1d\nmnist1d()"
            ),
        ),
        ImportError,
        "pip install mnist1d",
        "install mnist1d",
    ),
    Case(
        "dependencies",
        "transformers missing (materialize benchmark)",
        _without("transformers", "from initwise.bench.materialize import run\nrun('ci')"),
        ImportError,
        "builds GPT-2 with transformers",
        "install transformers",
    ),
    # --- issue 14: u-μP
    Case(
        "plan file",
        "forward_mult 0 (u-μP multiplier)",
        _plan_entry(forward_mult=0),
        ValueError,
        "forward_mult must be a finite number > 0",
        "write a positive multiplier",
    ),
    Case(
        "plan file",
        "forward_mult on a bias",
        _plan_entry(
            name="bias",
            shape=[8],
            scheme={"type": "constant", "value": 0.0},
            std=None,
            forward_mult=2.0,
        ),
        ValueError,
        "forward_mult applies to weights",
        "remove it from the entry",
    ),
    Case(
        "policy",
        "u-mup on nn.MultiheadAttention",
        _u_mup_on("mha"),
        ValueError,
        "MultiheadAttention.*use MuP",
        "Linear projections + F.scaled_dot_product_attention, or MuP",
    ),
    Case(
        "policy",
        "u-mup on tied embedding/readout weights",
        _u_mup_on("tied"),
        ValueError,
        "tied weights.*Untie them",
        "untie, or MuP(base_width)",
    ),
    Case(
        "policy",
        "u-mup on a weight forward also uses outside its module",
        _u_mup_on("outside"),
        ValueError,
        "'enc.weight' is also used in forward outside its module",
        "untie the use, or MuP(base_width)",
    ),
    Case(
        "plan file",
        "forward_mult_at without forward_mult",
        _plan_entry(forward_mult_at="head"),
        ValueError,
        "forward_mult_at names the module that carries a forward multiplier",
        "remove forward_mult_at or give forward_mult",
    ),
    Case(
        "plan file",
        "forward_mult_at naming a module that does not use the weight",
        _apply_entry(forward_mult=0.5, forward_mult_at="head"),
        ValueError,
        "module named by forward_mult_at must use this weight as its own",
        "plan the model again",
    ),
    Case(
        "policy",
        "MuP with a tied read-out written as F.linear(x, emb.weight), off the base width",
        _mup_functional_tied,
        ValueError,
        r"also the model's read-out .*only a Linear-like module",
        "an nn.Linear sharing the table, untie, or plan at the base width",
    ),
    Case(
        "optimizer groups",
        "param_groups(decay='mup')",
        lambda: (
            __import__("initwise.torch", fromlist=["plan"])
            .plan(__import__("torch").nn.Linear(4, 4))
            .param_groups(__import__("torch").nn.Linear(4, 4), lr=1e-3, decay="mup")
        ),
        ValueError,
        "decay must be 'independent'",
        "'independent' (mup's) or 'coupled'",
    ),
    Case(
        "policy",
        "MuP(base_width=64, width=0)",
        lambda: __import__("initwise.torch", fromlist=["MuP"]).MuP(base_width=64, width=0),
        ValueError,
        "MuP: width must be a positive integer",
        "the model's width, or None to infer it",
    ),
    Case(
        "policy",
        "UMuP(output_mult=0)",
        lambda: __import__("initwise.torch", fromlist=["UMuP"]).UMuP(output_mult=0),
        ValueError,
        "output_mult must be a finite number > 0",
        "a positive readout multiplier",
    ),
    # --- issue 17: plan files with absurd or malformed content
    Case(
        "plan file",
        'shape given as a string ("88")',
        _plan_entry(shape="88"),
        ValueError,
        "shape must be a list of integers",
        "write the shape as a list",
    ),
    Case(
        "plan file",
        "shape with floats ([8.9, 8.2])",
        _plan_entry(shape=[8.9, 8.2]),
        ValueError,
        "shape must be a list of integers",
        "write integers",
    ),
    Case(
        "plan file",
        "shape with a boolean ([true, 8])",
        _plan_entry(shape=[True, 8]),
        ValueError,
        "shape must be a list of integers",
        "write integers",
    ),
    Case(
        "plan file",
        "NaN in the informational std field",
        _plan_entry(std=float("nan")),
        ValueError,
        "expected a finite number",
        "remove or correct the field",
    ),
    Case(
        "plan file",
        "std field disagreeing with the scheme",
        _plan_entry(std=0.7),
        ValueError,
        "disagrees with its scheme",
        "remove it or correct the scheme",
    ),
    Case(
        "plan file",
        "Plan.save to a directory",
        lambda: (
            __import__("initwise.plan", fromlist=["Plan"])
            .Plan.from_json(_it().plan(_torch().nn.Linear(2, 2)).to_json())
            .save(__import__("tempfile").gettempdir())
        ),
        IsADirectoryError,
        "is a directory; give a file's path",
        "give a file's path",
    ),
    Case(
        "plan file",
        "Plan.load of a file that does not exist",
        lambda: __import__("initwise.plan", fromlist=["Plan"]).Plan.load(
            __import__("os").path.join(__import__("tempfile").gettempdir(), "no-such-plan.json")
        ),
        FileNotFoundError,
        "no-such-plan.json' does not exist; write one with",
        "write the plan first",
    ),
    Case(
        "plan file",
        "100,000-deep JSON nesting",
        _deep_json,
        ValueError,
        "nested too deeply",
        "pass a plan file",
    ),
    Case(
        "apply",
        "plan scheme N(0, 1e300²) on float32",
        _apply_entry(scheme={"type": "normal", "mean": 0, "std": 1e300}, std=None),
        ValueError,
        "can not be represented in torch.float32",
        "check the scale",
    ),
    Case(
        "apply",
        "plan fan_in 1e-300",
        _apply_entry(fan_in=1e-300, std=None),
        ValueError,
        "can not be represented",
        "check the scale",
    ),
    Case(
        "apply",
        "plan fan_in 1.2e-38 (std 9e18: its normal transform overflows float32)",
        _apply_entry(fan_in=1.1754943508222875e-38, std=None),
        ValueError,
        "too large to draw in torch.float32",
        "check the scale",
    ),
    Case(
        "apply",
        "plan fan_in 1e308 (std underflows)",
        _apply_entry(fan_in=1e308, std=None),
        ValueError,
        "underflows in torch.float32",
        "check the scale",
    ),
    Case(
        "torch drop-ins",
        "normal_(std=1e40) on float32",
        lambda: __import__("initwise.torch", fromlist=["x"]).normal_(_torch().empty(4), std=1e40),
        ValueError,
        "would be written as inf",
        "check the scale",
    ),
    # --- issue 17: the command line
    Case(
        "CLI",
        "--plan together with --policy",
        _cli_file("apply", "{F}:make", "--plan", "{F}", "--policy", "he", "--out", "{D}/w.st"),
        CLIError,
        "--plan and --policy exclude each other",
        "give one",
    ),
    Case(
        "CLI",
        "apply --out into a missing folder",
        _cli_file("apply", "{F}:make", "--out", "{D}/missing/w.safetensors"),
        CLIError,
        "does not exist",
        "create the folder (checked before any work)",
    ),
    Case(
        "CLI",
        "a factory raising RuntimeError",
        _cli_file(
            "plan", "{F}:make", "--quiet", text="def make():\n    raise RuntimeError('boom')\n"
        ),
        CLIError,
        "the factory .* raised RuntimeError: boom",
        "fix the factory",
    ),
    Case(
        "CLI",
        "plan --input-shape the model cannot run",
        _cli_file("plan", "{F}:make", "--quiet", "--input-shape", "3,5"),
        CLIError,
        r"--input-shape 3,5: a random input of that shape — the model could not run on it",
        "give the shape the model's forward takes",
    ),
    Case(
        "CLI",
        "plan --policy mup without --base-width",
        _cli_file("plan", "{F}:make", "--quiet", "--policy", "mup"),
        CLIError,
        "--policy mup needs --base-width N",
        "give the width the hyperparameters were tuned at",
    ),
    Case(
        "CLI",
        "plan --base-width without --policy mup",
        _cli_file("plan", "{F}:make", "--quiet", "--base-width", "32"),
        CLIError,
        "--base-width is μP's: give it with --policy mup",
        "add --policy mup",
    ),
    Case(
        "policy",
        'plan(model, "mup") (μP needs its base width)',
        lambda: __import__("initwise.torch", fromlist=["plan"]).plan(
            __import__("torch").nn.Linear(4, 4), "mup"
        ),
        ValueError,
        r"policy 'mup' needs its base width",
        "MuP(base_width=...), or --policy mup --base-width N",
    ),
    Case(
        "CLI",
        "a model file with a syntax error",
        _cli_file("plan", "{F}:make", "--quiet", text="def make(:\n"),
        CLIError,
        "syntax error in .*, line 1",
        "fix the file",
    ),
    Case(
        "CLI",
        "MODULE:FACTORY naming a missing file",
        _cli("plan", "nope_missing.py:make", "--quiet"),
        CLIError,
        r"is not a \.py file \(e\.g\. mypkg\.models:resnet18",
        "use MODULE:FACTORY or path.py:FACTORY",
    ),
    Case(
        "CLI",
        "--plan pointing at a folder",
        _cli_file("apply", "{F}:make", "--plan", "{D}", "--out", "{D}/w.st"),
        CLIError,
        "is a directory; pass the plan's JSON file",
        "pass the JSON file",
    ),
    Case(
        "CLI",
        "--plan naming a file that does not exist",
        _cli_file("apply", "{F}:make", "--plan", "{D}/nope.json", "--out", "{D}/w.st"),
        CLIError,
        "plan file .*nope.json' does not exist; write one with `initwise plan --json FILE`",
        "write the plan first",
    ),
    Case(
        "CLI",
        "--plan pointing at a binary file",
        lambda: _cli_file("apply", "{F}:make", "--plan", _bin(), "--out", "{D}/w.st")(),
        CLIError,
        "is not UTF-8 text",
        "pass the JSON file",
    ),
    Case(
        "CLI",
        "--vocab -5",
        _cli_file("diagnose", "{F}:make", "--input-shape", "2,4", "--vocab", "-5"),
        CLIError,
        "--vocab: must be > 0",
        "give a positive vocabulary size",
    ),
    Case(
        "CLI",
        "--input-shape 2,x",
        _cli_file("diagnose", "{F}:make", "--input-shape", "2,x"),
        CLIError,
        "--input-shape must be sizes separated by commas",
        "give integer sizes",
    ),
    Case(
        "CLI",
        "--input-shape=-1,8",
        _cli_file("diagnose", "{F}:make", "--input-shape=-1,8"),
        CLIError,
        "--input-shape needs positive sizes",
        "give positive sizes",
    ),
    Case(
        "CLI",
        "--seed beyond 64 bits",
        _cli_file("diagnose", "{F}:make", "--input-shape", "2,4", "--seed", str(2**64)),
        CLIError,
        r"--seed: must be in \[0, 2\*\*63\)",
        "use a smaller seed",
    ),
    Case(
        "CLI",
        "reproduce --seed -1",
        _cli("reproduce", "zero-symmetry", "--quick", "--seed", "-1"),
        CLIError,
        r"--seed: must be in \[0, 2\*\*63\)",
        "use a seed ≥ 0 (the same rule for every experiment)",
    ),
    Case(
        "CLI",
        "INITWISE_THREADS=abc",
        _cli_file("apply", "{F}:make", "--out", "{D}/w.st", env={"INITWISE_THREADS": "abc"}),
        CLIError,
        "INITWISE_THREADS must be a positive integer, got 'abc'",
        "unset it or set a number",
    ),
    Case(
        "CLI",
        "reproduce --resume of a short experiment",
        _cli("reproduce", "he2015", "--quick", "--resume"),
        CLIError,
        "resume: he2015 is short and keeps no journal",
        "run it without --resume (depth-sweep, lr-transfer and deep-vanilla keep one)",
    ),
    Case(
        "experiments",
        "unknown experiment",
        lambda: __import__("initwise.experiments", fromlist=["run"]).run("he2016"),
        ValueError,
        "unknown experiment 'he2016'",
        "use a listed experiment",
    ),
]


def markdown() -> str:
    """docs/errors.md, generated from :data:`CASES`."""
    lines = [
        "# Errors",
        "",
        "Every bad input initwise was tried with, the error it raises and the start of what the",
        "message says. Generated from `tests/error_cases.py` (`python -m tests.error_cases`); ",
        "`tests/test_errors.py` runs every row, so this table and the tests match one to one.",
        "",
        "| area | bad input | raises | the message contains | it tells you to |",
        "|---|---|---|---|---|",
    ]
    for c in CASES:
        pattern = c.match.replace("|", "\\|").replace("\\", "").replace(".*", " … ")
        lines.append(f"| {c.area} | {c.bad_input} | `{c.exc.__name__}` | {pattern} | {c.fix} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    with open("docs/errors.md", "w", encoding="utf-8") as f:
        f.write(markdown())
    print(f"docs/errors.md: {len(CASES)} cases")
