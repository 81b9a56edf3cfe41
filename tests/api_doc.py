"""Generate docs/api.md from the public API's signatures and docstrings:
``python -m tests.api_doc``; ``tests/test_docs.py`` checks the file is current."""

from __future__ import annotations

import importlib
import inspect

# fmt: off
MODULES = {
    "initwise.math": ["fans", "Fans", "gain", "calculate_gain", "second_moment",
                      "gaussian_expectation", "gaussian_expectations", "kinks_of",
                      "activation_fn"],
    "initwise.math.meanfield": ["variance_map", "chi", "chis", "fixed_point", "correlation_map",
                                "depth_scales", "propagate", "gaussian_cross", "ChainLayer",
                                "DepthScales"],
    "initwise.schemes": ["VarianceScaling", "Constant", "Normal", "Uniform", "TruncNormal",
                         "Orthogonal", "Eye", "Dirac", "DeltaOrthogonal", "Sparse", "from_dict",
                         "resolve", *[
                             "zeros", "ones", "constant", "normal", "uniform", "trunc_normal",
                             "variance_scaling", "xavier_uniform", "xavier_normal",
                             "kaiming_uniform", "kaiming_normal", "he_uniform", "he_normal",
                             "lecun_uniform", "lecun_normal", "orthogonal", "eye", "dirac",
                             "delta_orthogonal", "sparse"]],
    "initwise.numpy": ["init", "normal", "uniform", "trunc_normal", "variance_scaling",
                       "xavier_uniform", "xavier_normal", "kaiming_uniform", "kaiming_normal",
                       "lecun_uniform", "lecun_normal", "orthogonal", "eye", "dirac",
                       "delta_orthogonal", "sparse", "zeros", "ones", "constant"],
    "initwise.sampling": ["sample", "Stream", "box_ranges", "stream_key"],
    "initwise.kernels": [
        "fill",
        "fill_tensor",
        "device_kernel",
        "backend",
        "warm",
        "key_words",
        "SlowKernelWarning",
    ],
    "initwise.torch": ["init_model", "plan", "apply_plan", "materialize", "lsuv", "init_",
                       "uniform_", "normal_", "trunc_normal_", "constant_", "ones_", "zeros_",
                       "eye_", "dirac_", "xavier_uniform_", "xavier_normal_", "kaiming_uniform_",
                       "kaiming_normal_", "lecun_uniform_", "lecun_normal_", "variance_scaling_",
                       "orthogonal_", "delta_orthogonal_", "sparse_", "calculate_gain"],
    "initwise.torch.parametrized": ["Site", "sites", "sites_of", "site_of", "originals",
                                    "named_parameters", "quiet",
                                    "written_buffer"],
    "initwise.plan": ["Plan", "ParamPlan", "register_applier"],
    "initwise.activations": ["register_activation", "unregister_activation", "lookup",
                             "ActivationSpec", "ModuleMatch", "known_names"],
    "initwise.torch.policies": ["Policy", "Modifier", "chain", "register_policy", "get_policy",
                                "policy_names", "Auto", "Preset", "Orthogonal", "GPT2",
                                "TorchDefault", "ZeroInitResidual", "GPT2Residual",
                                "DepthScaledResidual", "Fixup", "Context", "WeightSite"],
    "initwise.diagnostics": ["diagnose", "Report", "LayerStats", "write_report", "plot_reports"],
    "initwise.experiments": ["run", "demo"],
}
# fmt: on


def _doc(obj: object) -> str:
    text = inspect.getdoc(obj) or "(no docstring)"
    return text.strip()


def markdown() -> str:
    out = [
        "# API reference",
        "",
        "Generated from the docstrings by `python -m tests.api_doc` (kept current by a test).",
        "",
    ]
    for mod_name, names in MODULES.items():
        mod = importlib.import_module(mod_name)
        out += [f"## `{mod_name}`", "", _doc(mod).split("\n\n")[0], ""]
        for name in names:
            obj = getattr(mod, name)
            try:
                sig = str(inspect.signature(obj))
            except (TypeError, ValueError):
                sig = ""
            kind = "class " if inspect.isclass(obj) else ""
            out += [f"### `{kind}{name}{sig}`", "", _doc(obj), ""]
    return "\n".join(out).rstrip() + "\n"


if __name__ == "__main__":
    with open("docs/api.md", "w", encoding="utf-8") as f:
        f.write(markdown())
    print("docs/api.md written")
