"""Content hashes of weight files and folders (sha256), cached by path, size and mtime.

AUTOMATIC1111 shows the first 10 hex digits of a checkpoint's sha256 as its "Model hash".
"""
from __future__ import annotations

import hashlib
import json
import os
import struct
from pathlib import Path

from .tiny import cache_root

WEIGHT_SUFFIXES = (".safetensors", ".bin", ".ckpt", ".pt", ".pth")


def _cache_file() -> Path:
    return cache_root() / "hashes.json"


def _load_cache() -> dict:
    try:
        return json.loads(_cache_file().read_text())
    except (OSError, ValueError):
        return {}


def file_sha256(path: Path) -> str:
    return _cached_sha256(path, "", lambda fh: None)


def safetensors_data_sha256(path: Path) -> str:
    """sha256 of a .safetensors file after its JSON header: the "addnet" hash AUTOMATIC1111 shows as
    "Lora hashes" and model sites match LoRAs by."""
    def skip_header(fh) -> None:
        (n,) = struct.unpack("<Q", fh.read(8))
        fh.seek(8 + n)

    return _cached_sha256(path, "addnet|", skip_header)


def _cached_sha256(path: Path, kind: str, seek) -> str:
    """sha256 of a file from where `seek(fh)` leaves it, cached by kind, path, size and mtime."""
    path = Path(path).resolve()
    st = path.stat()
    key = f"{kind}{path}|{st.st_size}|{st.st_mtime_ns}"
    cache = _load_cache()
    if key in cache:
        return cache[key]
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        seek(fh)
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    cache[key] = digest.hexdigest()
    target = _cache_file()
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(cache))
    os.replace(tmp, target)
    return cache[key]


def folder_sha256(folder: Path) -> str:
    """Hash of a folder's weight files: sha256 over their relative paths and file hashes."""
    folder = Path(folder)
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix in WEIGHT_SUFFIXES)
    digest = hashlib.sha256()
    for p in files:
        digest.update(f"{p.relative_to(folder).as_posix()}:{file_sha256(p)}\n".encode())
    return digest.hexdigest()


def path_sha256(path: Path) -> str:
    path = Path(path)
    return folder_sha256(path) if path.is_dir() else file_sha256(path)
