"""A stand-in `vllm` installation: a console script whose Python sees a `vllm` distribution of a
chosen version. It is enough for jupyter_qwq to tell a CPU build from a GPU build and to build the
`vllm serve` command line; it serves nothing (the real CPU build is in tests/test_vllm.py)."""

from __future__ import annotations

import sys
from pathlib import Path


def vllm_install(root: Path, version: str, monkeypatch) -> str:
    """Create it under `root`, make this test's subprocesses see it; its `vllm` command."""
    site = root / "site"
    info = site / f"vllm-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: vllm\nVersion: {version}\n")
    exe = root / "bin" / "vllm"
    exe.parent.mkdir()
    exe.write_text(f"#!{sys.executable}\nraise SystemExit('a stand-in: it serves nothing')\n")
    exe.chmod(0o755)
    monkeypatch.setenv("PYTHONPATH", str(site))
    monkeypatch.delenv("VLLM_TARGET_DEVICE", raising=False)
    return str(exe)
