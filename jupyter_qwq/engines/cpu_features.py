"""Whether the installed llama.cpp was compiled for instructions this CPU has.

llama-cpp-python compiles llama.cpp from source, by default for the machine it is built on
(``-march=native``). A build made on a CPU with AVX-512 or AMX, then used on one without (a venv,
an image or a pip cache carried to another machine), dies on its first token with SIGILL. The
instruction sets llama.cpp was compiled with are in its system info ("AVX512 = 1"); the CPU's are
in /proc/cpuinfo. Comparing them before the model loads turns that crash into an error that says
how to rebuild.
"""

from __future__ import annotations

import re
from pathlib import Path

__all__ = ["PORTABLE_REBUILD", "cpu_flags", "llama_cpp_features", "missing_instructions",
           "unsupported_build_message"]

# llama.cpp's names for the x86 instruction sets it reports, and the /proc/cpuinfo flag of each.
_X86_FLAGS = {
    "SSE3": "pni", "SSSE3": "ssse3", "AVX": "avx", "AVX_VNNI": "avx_vnni", "AVX2": "avx2",
    "F16C": "f16c", "FMA": "fma", "BMI2": "bmi2", "AVX512": "avx512f",
    "AVX512_VBMI": "avx512vbmi", "AVX512_VNNI": "avx512_vnni", "AVX512_BF16": "avx512_bf16",
    "AMX_INT8": "amx_int8",
}

PORTABLE_REBUILD = ('CMAKE_ARGS="-DGGML_NATIVE=OFF" pip install --force-reinstall --no-deps '
                    '--no-cache-dir llama-cpp-python=={version}')


def cpu_flags(cpuinfo: str | None = None) -> set[str] | None:
    """The CPU's feature flags (x86 Linux), or None where /proc/cpuinfo does not list them."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            return None
    for line in cpuinfo.splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return None


def llama_cpp_features(system_info: str) -> set[str]:
    """The features a llama.cpp build reports as compiled in ("AVX2 = 1 | ..." → {"AVX2"})."""
    return {name for name, value in re.findall(r"\b([A-Z][A-Z0-9_]*) = (\w+)", system_info)
            if value != "0"}


def missing_instructions(compiled: set[str], flags: set[str] | None) -> list[str]:
    """The x86 instruction sets compiled in that the CPU lacks (none where flags are unknown)."""
    if flags is None:
        return []
    return sorted(name for name, flag in _X86_FLAGS.items() if name in compiled and flag not in flags)


def unsupported_build_message(missing: list[str], version: str) -> str:
    return (f"llama-cpp-python {version} was compiled for instructions this CPU does not have "
            f"({', '.join(missing)}): it was built on another machine (with -march=native, "
            f"llama.cpp's default) and would crash with SIGILL on its first token. Rebuild it "
            f"for any x86-64 CPU with AVX2:\n    {PORTABLE_REBUILD.format(version=version)}")
