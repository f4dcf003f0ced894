"""A llama.cpp build made for another CPU is refused with what to do, not run into SIGILL."""

from __future__ import annotations

from jupyter_qwq.engines.cpu_features import (cpu_flags, llama_cpp_features, missing_instructions,
                                              unsupported_build_message)

# llama.cpp's system info, as llama_print_system_info() gives it, of a -march=native build on an
# Intel Sapphire Rapids machine, and of the portable build (GGML_NATIVE=OFF) the README installs.
NATIVE_ON_SAPPHIRE_RAPIDS = (
    "CPU : SSE3 = 1 | SSSE3 = 1 | AVX = 1 | AVX_VNNI = 1 | AVX2 = 1 | F16C = 1 | FMA = 1 | "
    "BMI2 = 1 | AVX512 = 1 | AVX512_VBMI = 1 | AVX512_VNNI = 1 | AVX512_BF16 = 1 | AMX_INT8 = 1 | "
    "LLAMAFILE = 1 | OPENMP = 1 | REPACK = 1 | ")
PORTABLE = ("CPU : SSE3 = 1 | SSSE3 = 1 | AVX = 1 | AVX2 = 1 | F16C = 1 | FMA = 1 | BMI2 = 1 | "
            "LLAMAFILE = 1 | OPENMP = 1 | REPACK = 1 | ")

# /proc/cpuinfo's flags line of an AMD EPYC (Zen 3: AVX2, no AVX-512, no AMX), shortened.
ZEN3_CPUINFO = """processor\t: 0
vendor_id\t: AuthenticAMD
flags\t\t: fpu vme sse sse2 pni pclmulqdq ssse3 fma cx16 sse4_1 sse4_2 movbe popcnt aes xsave avx f16c rdrand bmi1 avx2 bmi2 sha_ni vaes
"""
SAPPHIRE_RAPIDS_FLAGS = set("pni ssse3 fma avx f16c avx2 bmi2 avx_vnni avx512f avx512vbmi avx512_vnni "
                            "avx512_bf16 amx_int8 amx_tile amx_bf16".split())


def test_a_native_build_from_an_avx512_machine_is_refused_on_one_without():
    missing = missing_instructions(llama_cpp_features(NATIVE_ON_SAPPHIRE_RAPIDS), cpu_flags(ZEN3_CPUINFO))
    assert missing == ["AMX_INT8", "AVX512", "AVX512_BF16", "AVX512_VBMI", "AVX512_VNNI", "AVX_VNNI"]
    message = unsupported_build_message(missing, "0.3.36")
    assert "AVX512" in message and "SIGILL" in message
    assert 'CMAKE_ARGS="-DGGML_NATIVE=OFF" pip install --force-reinstall' in message
    assert "llama-cpp-python==0.3.36" in message


def test_the_portable_build_runs_on_both_machines_and_a_native_build_on_its_own():
    for flags in (cpu_flags(ZEN3_CPUINFO), SAPPHIRE_RAPIDS_FLAGS):
        assert missing_instructions(llama_cpp_features(PORTABLE), flags) == []
    assert missing_instructions(llama_cpp_features(NATIVE_ON_SAPPHIRE_RAPIDS), SAPPHIRE_RAPIDS_FLAGS) == []


def test_features_switched_off_or_unknown_cpus_are_not_refused():
    assert "AVX512" not in llama_cpp_features("CPU : AVX2 = 1 | AVX512 = 0 | ")
    assert missing_instructions(llama_cpp_features(NATIVE_ON_SAPPHIRE_RAPIDS), None) == []
    assert cpu_flags("processor : 0\nmodel name : an ARM core\n") is None
