"""Convert a GGUF model into a Hugging Face folder that vLLM loads (run inside vLLM's own venv).

    <vllm venv>/bin/python gguf_to_hf.py MODEL.gguf OUT_DIR

vLLM has no GGUF loader in its core, so the embedded default model (a Q4 GGUF) is dequantised
once by transformers into bf16 safetensors, with its tokenizer and chat template. This file is
run by path with the venv's Python, which has transformers, gguf and torch but not jupyter_qwq:
it imports nothing from the package.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path


def convert(gguf: Path, out: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.bfloat16)
    # The weights are dequantised already; save_pretrained refuses a model that still says it is
    # GGUF-quantised.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.is_quantized = False
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        model.save_pretrained(staging, safe_serialization=True)
        tokenizer.save_pretrained(staging)
        if out.exists():
            shutil.rmtree(out)
        staging.rename(out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: gguf_to_hf.py MODEL.gguf OUT_DIR")
    source, target = Path(sys.argv[1]).resolve(), Path(sys.argv[2]).resolve()
    target.parent.mkdir(parents=True, exist_ok=True)
    convert(source, target)
    print(f"converted {source} -> {target}")
