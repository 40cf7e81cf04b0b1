"""Writing files and directories so that readers never see them half written: write under a
temporary name in the same directory, then rename (atomic on POSIX within one filesystem)."""

from __future__ import annotations

import os
import shutil
import tempfile


def write_text_atomic(path: str, text: str) -> str:
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise
    return path


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
