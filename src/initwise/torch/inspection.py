"""Reading a model: :func:`inspect_model` traces it (:mod:`~initwise.torch.graph`'s builders),
reads the layers its ``forward`` computes through functions
(:func:`~initwise.torch.functional.functional_layers`) and analyzes the graph; the example inputs
it makes up for Hugging Face and timm models when fx cannot trace them."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from .batch import noted_run, tensors
from .functional import custom_leaf, functional_layers
from .graph import (
    LayerInfo,
    ModelInfo,
    analyze,
    hooked,
    is_leaf,
    known_graph,
    trace_fx,
    trace_run,
    trace_sequential,
)
from .modules import kind as module_kind
from .modules import owns_parameters


def inspect_model(model: nn.Module, example_input: Any = None) -> ModelInfo:
    """Trace ``model`` (fx first, then a run with ``example_input``, then Hugging Face's
    ``dummy_inputs``), read the layers its ``forward`` computes through functions
    (:func:`~initwise.torch.functional.functional_layers`) and analyze it. Never changes the
    model's weights or mode."""
    known = known_graph(model)
    if known is not None:
        return analyze(model, known)
    if is_leaf(model):  # a single layer (nn.LSTM, nn.Linear): nothing to trace
        if module_kind(model) == "unknown" and owns_parameters(model):
            # no child modules, its own raw parameters: a network written with nn.Parameter
            # and `x @ W` in forward is traced when its products are layers
            for trace in (trace_fx, trace_run):
                if trace is trace_run and example_input is None:
                    break
                try:
                    args = (model,) if trace is trace_fx else (model, example_input)
                    graph = functional_layers(model, trace(*args))
                except Exception:
                    continue
                if graph.extra:
                    return analyze(model, graph)
        return ModelInfo({"": LayerInfo("", model)}, 0, "single layer")
    if example_input is not None and hooked(model):
        # forward (pre-)hooks of the user's: a run records what they compute (fx calls a leaf
        # layer without its hooks; the chain read from a Sequential runs none — a pre-hook that
        # scaled a layer's input ×10 left the output at rms 8.2, unsaid)
        try:
            traced = trace_run(model, example_input)
            noted_run()
            return analyze(model, functional_layers(model, traced))
        except Exception:
            pass  # (traced the usual way below; the hooks it does not run are said)
    chain = trace_sequential(model)
    if chain is not None and not _custom_layers(model):
        return analyze(model, chain)
    errors = []
    try:
        return analyze(model, functional_layers(model, trace_fx(model)))
    except Exception as exc:
        errors.append(f"torch.fx could not trace it ({type(exc).__name__}: {_short(exc)})")
    if example_input is None:
        example_input = hf_example(model)
    if example_input is None:
        example_input = timm_example(model)
    if example_input is not None:
        try:
            traced = trace_run(model, example_input)
            noted_run()
            return analyze(model, functional_layers(model, traced))
        except Exception as exc:
            errors.append(f"running the example input failed ({type(exc).__name__}: {_short(exc)})")
    else:
        errors.append("no example_input was given to trace it by running")
    layers = {n: LayerInfo(n, m) for n, m in model.named_modules() if is_leaf(m) and m is not model}
    return ModelInfo(layers, 0, "none", "; ".join(errors))


def _custom_layers(model: nn.Module) -> bool:
    """Whether a submodule is a custom leaf (:func:`~initwise.torch.functional.custom_leaf`):
    fx traces an ``nn.Sequential`` holding one so that
    :func:`~initwise.torch.functional.functional_layers` can read its products as layers (the
    chain read from the structure left them "no rule", their N(0, 1) weights as built)."""
    return any(custom_leaf(m, model) for m in model.modules())


def timm_example(model: nn.Module) -> Any:
    """An example input for a timm model — zeros of ``(2, *pretrained_cfg["input_size"])`` (timm
    states each model's input size in its ``pretrained_cfg``; ``default_cfg`` in older
    versions) on the model's device and dtype — or None. Tracing by running needs only the
    shapes: a model fx cannot trace (MobileViT, Twins, CrossViT, EfficientViT, NesT; timm's
    VGG) was "activations not detected" without it."""
    cfg = getattr(model, "pretrained_cfg", None) or getattr(model, "default_cfg", None)
    size = cfg.get("input_size") if isinstance(cfg, dict) else None
    if not (
        isinstance(size, (tuple, list))
        and len(size) in (2, 3, 4)
        and all(isinstance(d, int) and d > 0 for d in size)
    ):
        return None
    p = next(model.parameters(), None)
    kw = {"device": p.device, "dtype": p.dtype} if p is not None and p.is_floating_point() else {}
    return torch.zeros(2, *size, **kw)


def hf_example(model: nn.Module) -> Any:
    """An example input for a Hugging Face model built from its config (their ``dummy_inputs``
    are ``input_ids``, which only text models can run): ``pixel_values`` of ``(2, num_channels,
    image_size, image_size)`` for vision models (64 where the config states no size); speech
    models' ``input_features`` ``(2, num_mel_bins, 2·max_source_positions)`` (Whisper) or raw
    ``input_values`` ``(2, 32·Π conv_stride)`` (Wav2Vec2, HuBERT, WavLM) or a spectrogram
    ``(2, max_length, num_mel_bins)`` (AST), with ``decoder_input_ids`` for encoder–decoders;
    else the model's ``dummy_inputs`` (with ``pixel_values`` added for text + image models:
    CLIP, SigLIP); for vision–language models (LLaVA, PaliGemma, BLIP-2, Idefics 3)
    ``input_ids`` with the image tokens their vision tower asks for
    (:func:`_vision_language_example`); a multi-codebook decoder's (MusicGen)
    ``(2·num_codebooks, 8)`` ids; a time-series model's ``past_values`` (PatchTST,
    ``(2, context_length, channels)``, seeded N(0, 1)); None otherwise. Zeros (0.5 for
    vision–language models), on the meta device when the model is."""
    cfg = getattr(model, "config", None)
    meta = any(p.is_meta for p in model.parameters())
    dev = "meta" if meta else "cpu"
    main = getattr(model, "main_input_name", None)
    vlm = _vision_language_example(model, cfg, dev)
    if vlm is not None:
        return vlm
    speech: dict[str, Any] | None = None
    if main == "input_features" and isinstance(getattr(cfg, "num_mel_bins", None), int):
        frames = 2 * int(getattr(cfg, "max_source_positions", 1500))
        speech = {"input_features": torch.zeros(2, cfg.num_mel_bins, frames, device=dev)}
    elif main == "input_values" and getattr(cfg, "conv_stride", None):
        hop = 1
        for k in cfg.conv_stride:
            hop *= int(k)
        speech = {"input_values": torch.zeros(2, 32 * hop, device=dev)}
    elif main == "input_values" and _ints(cfg, "max_length", "num_mel_bins"):
        # a spectrogram classifier (AST): (batch, frames, mel bins)
        speech = {"input_values": torch.zeros(2, cfg.max_length, cfg.num_mel_bins, device=dev)}
    elif main == "past_values" and _ints(cfg, "context_length", "num_input_channels"):
        # a time-series model (PatchTST): (batch, context, channels), seeded N(0, 1) — a model
        # that scales its input by the context's std would divide zeros by zero
        g = torch.Generator().manual_seed(0)
        shape = (2, cfg.context_length, cfg.num_input_channels)
        return {"past_values": torch.randn(shape, generator=g).to(dev)}
    if speech is not None:
        if getattr(cfg, "is_encoder_decoder", False):
            start = getattr(cfg, "decoder_start_token_id", None) or 0
            speech["decoder_input_ids"] = torch.full((2, 4), int(start), device=dev)
        return speech
    if main == "pixel_values" and cfg is not None:
        # convnets' configs (ResNet, MobileNet, RegNet) state no image size: 64×64 runs them
        # (32× downsampling leaves 2×2); a batch of 2, since BatchNorm in train mode cannot
        # normalize one value per channel
        size = getattr(cfg, "image_size", None) or 64
        channels = getattr(cfg, "num_channels", 3)
        if isinstance(size, int):
            size = (size, size)
        if isinstance(size, (tuple, list)) and len(size) == 2:
            return torch.zeros(2, channels, *size, device=dev)
    if main == "input_ids" and _ints(cfg, "num_codebooks") and not cfg.is_encoder_decoder:
        # a multi-codebook audio decoder (MusicGen): one row of ids per codebook and example
        return {"input_ids": torch.zeros(2 * cfg.num_codebooks, 8, dtype=torch.long, device=dev)}
    dummy = getattr(model, "dummy_inputs", None)
    vision = getattr(cfg, "vision_config", None)
    size = getattr(vision, "image_size", None)
    if isinstance(dummy, dict) and isinstance(size, int) and "pixel_values" not in dummy:
        # text + image models (CLIP, SigLIP): their forward needs both inputs
        channels = getattr(vision, "num_channels", 3)
        return {**dummy, "pixel_values": torch.zeros(1, channels, size, size, device=dev)}
    return dummy


def _ints(cfg: Any, *names: str) -> bool:
    """Whether ``cfg`` states each of ``names`` as a positive int."""
    values = [getattr(cfg, n, None) for n in names]
    return all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in values)


def _vision_language_example(model: nn.Module, cfg: Any, dev: str) -> dict[str, Any] | None:
    """``input_ids`` holding as many image tokens as the vision tower gives for one image, then 8
    text tokens, beside that image's ``pixel_values`` (0.5 everywhere; ``(1, 1, C, H, W)`` where
    the tower wants images per sample, as Idefics 3): vision–language models (LLaVA, PaliGemma,
    BLIP-2, Idefics 3 / SmolVLM) refuse any other pair ("image features and image tokens do not
    match"). The count is the model's own: ``get_image_features`` on the image, its projected
    features' elements over the text width. None for other models, or where that does not
    run."""
    vision = getattr(cfg, "vision_config", None)
    text = getattr(cfg, "text_config", None)
    token = next(
        (
            v
            for v in (getattr(cfg, "image_token_index", None), getattr(cfg, "image_token_id", None))
            if isinstance(v, int) and not isinstance(v, bool)
        ),
        None,
    )
    features = getattr(model, "get_image_features", None)
    size = getattr(vision, "image_size", None)
    width = getattr(text, "hidden_size", None)
    vocab = getattr(text, "vocab_size", None)
    if isinstance(size, (list, tuple)) and len(size) == 2 and size[0] == size[1]:
        size = size[0]
    if not (callable(features) and token is not None and isinstance(size, int)):
        return None
    if not (isinstance(width, int) and isinstance(vocab, int) and vocab > 10):
        return None
    image = (getattr(vision, "num_channels", 3), size, size)
    out = None
    for shape in ((1, *image), (1, 1, *image)):  # one image; Idefics 3: one image of one sample
        # 0.5, not zeros: Idefics 3 drops all-zero images as padding
        pixels = torch.full(shape, 0.5, device=dev)
        try:
            with torch.no_grad():
                out = features(pixel_values=pixels)
            break
        except Exception:  # (a tower that needs more: image sizes, patch masks — not this one)
            out = None
    if out is None:
        return None
    total = sum(t.numel() for t in tensors(getattr(out, "pooler_output", out)))
    if not total or total % width:
        return None
    k = total // width
    text_ids = [i for i in range(1, vocab) if i != token][:8]
    ids = torch.tensor([[token] * k + text_ids], device=dev)
    return {"input_ids": ids, "pixel_values": pixels}


def _short(exc: Exception) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return text[:160]
