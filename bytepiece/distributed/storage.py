"""Reading and writing files that are local paths or URLs.

The driver and the workers of a cluster must reach the same files: paths on a
filesystem every machine mounts, or URLs of an object store (``s3://``, ``gs://``,
``file://``...) opened with fsspec, which is imported only when a URL is met. Local
files are written atomically.
"""

from __future__ import annotations

import io
import os

import numpy as np

from ..atomic import atomic_write


def is_url(path: str) -> bool:
    return "://" in path or "::" in path


def fs_and_path(path: str, storage_options: dict | None = None):
    """(fsspec filesystem, path within it) of a URL."""
    import fsspec.core

    return fsspec.core.url_to_fs(path, **(storage_options or {}))


def join(folder: str, name: str) -> str:
    return folder.rstrip("/") + "/" + name if is_url(folder) else os.path.join(folder, name)


def make_folder(folder: str, storage_options: dict | None = None) -> None:
    if is_url(folder):
        fs, p = fs_and_path(folder, storage_options)
        fs.makedirs(p, exist_ok=True)
    else:
        os.makedirs(folder, exist_ok=True)


def write_path(path: str, data: bytes, storage_options: dict | None = None) -> None:
    """Write data to a local path (atomically) or to a URL the workers can reach."""
    if is_url(path):
        fs, p = fs_and_path(path, storage_options)
        with fs.open(p, "wb") as f:
            f.write(data)
    else:
        with atomic_write(path, "wb") as f:
            f.write(data)


def read_path(path: str, storage_options: dict | None = None) -> bytes:
    if is_url(path):
        fs, p = fs_and_path(path, storage_options)
        with fs.open(p, "rb") as f:
            return f.read()
    with open(path, "rb") as f:
        return f.read()


def write_npy(path: str, array: np.ndarray, storage_options: dict | None = None) -> None:
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=False)
    write_path(path, buf.getvalue(), storage_options)


def read_npy(path: str, storage_options: dict | None = None) -> np.ndarray:
    return np.load(io.BytesIO(read_path(path, storage_options)))
