"""Writing files and directories so that a reader (or a crash) never sees them half written:
everything is written under a temporary name in the same directory, then renamed into place
(atomic on POSIX within one filesystem); a failure removes the temporary and leaves the old file."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile


@contextlib.contextmanager
def atomic_path(path: str, suffix: str = ""):
    """Yields a temporary file path next to `path`; on success it is renamed over `path`, on any
    exception it is removed. `suffix` keeps writers that dispatch on the extension happy
    (e.g. `model.save` wants ".keras")."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-", suffix=suffix)
    os.close(fd)
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def write_bytes_atomic(path: str, data: bytes) -> str:
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            f.write(data)
    return path


def write_text_atomic(path: str, text: str) -> str:
    return write_bytes_atomic(path, text.encode("utf-8"))


def write_json_atomic(path: str, value, **dumps_kwargs) -> str:
    dumps_kwargs.setdefault("indent", 2)
    return write_text_atomic(path, json.dumps(value, **dumps_kwargs) + "\n")


class StagingDir:
    """`with StagingDir(final) as tmp:` build the directory in `tmp` (a hidden sibling of
    `final`); on success it is renamed to `final`, on any exception it is removed. A model server
    polling the parent never sees `tmp` as a version (its name is not an integer)."""

    def __init__(self, final: str):
        self.final = os.path.abspath(final)
        self.path = None

    def __enter__(self) -> str:
        parent = os.path.dirname(self.final)
        os.makedirs(parent, exist_ok=True)
        self.path = tempfile.mkdtemp(prefix=f".tmp-{os.path.basename(self.final)}-", dir=parent)
        return self.path

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            if os.path.exists(self.final):
                shutil.rmtree(self.path, ignore_errors=True)
                raise FileExistsError(f"{self.final} appeared while it was being written")
            os.rename(self.path, self.final)
        else:
            shutil.rmtree(self.path, ignore_errors=True)
        return False


@contextlib.contextmanager
def staged_directory(directory: str, publish_order=None):
    """Yields a hidden staging directory next to `directory` to write a whole set of files into.

    On success a new `directory` appears by one rename; an existing one gets each staged file
    renamed over its namesake in `publish_order` (a sort key over file names; e.g. data before the
    index that points at it, config last) and keeps its other files. On failure, or after
    publishing, the staging directory is removed.
    """
    directory = os.fspath(directory)
    parent = os.path.dirname(os.path.abspath(directory))
    os.makedirs(parent, exist_ok=True)
    staging = tempfile.mkdtemp(dir=parent, prefix=f".tmp-{os.path.basename(directory)}-")
    try:
        yield staging
        if not os.path.exists(directory):
            os.rename(staging, directory)
            return
        for name in sorted(os.listdir(staging), key=publish_order):
            os.replace(os.path.join(staging, name), os.path.join(directory, name))
    finally:
        if os.path.isdir(staging):
            shutil.rmtree(staging)
