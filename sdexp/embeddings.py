"""The textual-inversion embedding axis.

An embedding file is bound to a trigger token that prompts or negative prompts carry (config
`embedding_token`, "<embedding>" by default). Each file is loaded once per model under its own
internal token; a cell's text has the trigger replaced by that token, so cells with different
embeddings share one loaded model and their encodings never mix. With `embedding=none` the trigger
is removed from the text, the baseline A1111 users get by deleting it.

Formats: A1111 `.pt` (`string_to_param`) and `.safetensors` (`emb_params`), diffusers'
`learned_embeds` (one key: the token), and SDXL pairs (`clip_l`, `clip_g`). `.pt` files are
pickles: read only with `allow_pickle_embeddings=true`, then with `torch.load(weights_only=True)`.
"""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

import torch

from .named_files import resolve_named_file

EMBEDDING_SUFFIXES = (".safetensors",)
EMBEDDING_PICKLE_SUFFIXES = (".pt", ".bin")


@dataclass(frozen=True)
class EmbeddingSpec:
    name: str                  # label in grids and rows; the word A1111 prompts would use
    source: str                # absolute path
    token: str                 # the trigger token the prompts carry


def resolve_embedding(value, table, token: str, allow_pickle: bool, model_spec) -> EmbeddingSpec | None:
    """The embedding an axis value names, read once to check it is one and fits `model_spec`, so a bad
    file fails here, before any model loads."""
    found = resolve_named_file("embedding", value, table, EMBEDDING_SUFFIXES, "embeddings",
                               EMBEDDING_PICKLE_SUFFIXES, allow_pickle, "allow_pickle_embeddings")
    if found is None:
        return None
    spec = EmbeddingSpec(found[0], str(found[1]), str(token))
    check_embedding_fits(spec, read_embedding(spec), model_spec)
    return spec


def read_embedding(spec: EmbeddingSpec) -> dict[str, torch.Tensor]:
    """{'clip_l': (n, d)} for SD1 embeddings, {'clip_l', 'clip_g'} for SDXL ones."""
    try:
        if spec.source.endswith(".safetensors"):
            from safetensors.torch import load_file

            data = load_file(spec.source)
        else:
            data = torch.load(spec.source, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001  (safetensors and torch.load raise many types)
        raise ValueError(f"embedding={spec.name!r}: cannot read {spec.source} ({type(e).__name__}: {e})") from None
    tensors = _embedding_tensors(data)
    if tensors is None:
        keys = list(data)[:5] if isinstance(data, dict) else type(data).__name__
        raise ValueError(f"embedding={spec.name!r}: {spec.source} is not a textual-inversion embedding; "
                         f"valid: A1111 (string_to_param or emb_params), diffusers (one token key) or "
                         f"SDXL (clip_l and clip_g); found {keys}")
    return tensors


def _embedding_tensors(data) -> dict[str, torch.Tensor] | None:
    if not isinstance(data, dict):
        return None
    if "clip_l" in data and "clip_g" in data:
        found = {"clip_l": data["clip_l"], "clip_g": data["clip_g"]}
    elif "string_to_param" in data and isinstance(data["string_to_param"], dict) and data["string_to_param"]:
        found = {"clip_l": next(iter(data["string_to_param"].values()))}
    elif "emb_params" in data:
        found = {"clip_l": data["emb_params"]}
    elif len(data) == 1:
        found = {"clip_l": next(iter(data.values()))}
    else:
        return None
    if not all(isinstance(t, torch.Tensor) and t.dim() in (1, 2) for t in found.values()):
        return None
    return {k: (t if t.dim() == 2 else t[None]).float() for k, t in found.items()}


def check_embedding_fits(spec: EmbeddingSpec, tensors: dict[str, torch.Tensor], model_spec) -> None:
    """Before any model loads: the embedding's vectors (`read_embedding`) match the model's text
    encoder width(s)."""
    from .models import text_encoder_widths

    try:
        widths = text_encoder_widths(model_spec)
    except ValueError:      # a bad model source is reported on its own
        return
    if widths is None:
        return
    have = tuple(tensors[k].shape[1] for k in ("clip_l", "clip_g") if k in tensors)
    if have != widths[:len(have)] or len(have) != len(widths):
        kind = "an SDXL embedding (clip_l and clip_g)" if len(widths) == 2 else "an SD1 embedding (one vector width)"
        raise ValueError(f"embedding={spec.name!r}: vectors of width {have} do not fit model {model_spec.name!r}, "
                         f"whose text encoder width is {widths}; valid: {kind} made for this model")


def internal_token(spec: EmbeddingSpec) -> str:
    return "<sdexp-" + hashlib.sha256(spec.source.encode()).hexdigest()[:10] + ">"


def strip_token(text: str, token: str) -> str:
    """Remove a trigger token and tidy the separators around it."""
    out = text.replace(token, " ")
    out = re.sub(r"\s*,(\s*,)+", ",", out)
    out = re.sub(r"\s+", " ", out).strip()
    return out.strip(", ").strip()


def text_for_encoder(model, spec: EmbeddingSpec | None, token: str | None, text: str) -> str:
    """The text the tokenizer sees: the trigger replaced by the embedding's loaded token(s)."""
    if spec is None:
        return strip_token(text, token) if token else text
    if spec.token not in text:
        return text
    bound = load_embedding(model, spec)
    return model.pipe.maybe_convert_prompt(text.replace(spec.token, bound), model.tokenizer)


def load_embedding(model, spec: EmbeddingSpec) -> str:
    """Load the embedding into the model's text encoder(s) once; returns its internal token."""
    loaded: dict = model.adapters.setdefault("embeddings", {})
    token = internal_token(spec)
    if token in loaded:
        return token
    tensors = read_embedding(spec)
    pairs = [("clip_l", model.tokenizer, model.text_encoder)]
    if getattr(model, "family", "sd1") == "sdxl":
        if "clip_g" not in tensors:
            raise ValueError(f"embedding={spec.name!r}: {spec.source} is an SD1 embedding; the SDXL model "
                             f"{model.spec.name!r} needs one with clip_l and clip_g")
        pairs.append(("clip_g", model.tokenizer_2, model.text_encoder_2))
    for key, tokenizer, encoder in pairs:
        emb = tensors[key]
        width = encoder.get_input_embeddings().weight.shape[1]
        if emb.shape[1] != width:
            raise ValueError(f"embedding={spec.name!r}: vectors of width {emb.shape[1]} do not fit model "
                             f"{model.spec.name!r}, whose text encoder has width {width}")
        model.pipe.load_textual_inversion(emb.to(encoder.dtype), token=token, tokenizer=tokenizer,
                                          text_encoder=encoder)
    loaded[token] = True
    return token


def embedding_hash(spec: EmbeddingSpec) -> str:
    """sha256 of the file; A1111's "TI hashes" shows its first 12 digits."""
    from .hashing import file_sha256

    return file_sha256(spec.source)
