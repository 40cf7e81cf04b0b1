"""File access that works the same for local paths and remote URIs (`gs://bucket/run`, `s3://`,
`hdfs://`, TensorFlow's in-process `ram://`): every reader and writer of bert_tf goes through here.

A local path is served by `os`, `shutil`, `glob` and `open` exactly as before (permissions, error
types, speed); a path with a URI scheme (`scheme://...`) by `tf.io.gfile`, which is what
TensorFlow's checkpoints, summaries, SavedModels and TFRecords use for it, so a run directory on an
object store works end to end. The functions keep the names and error types of their `os`
counterparts (FileNotFoundError, IsADirectoryError, FileExistsError), so callers read the same
for both kinds of path.

What object stores lack, and how callers cope: there is no atomic rename of a directory (and on
some stores none of a file either), so `bert_tf.atomic` builds a remote directory in a local
staging directory and uploads it with its completion marker (task.json, saved_model.pb,
config.json, ...) last; a reader that finds no marker sees no result, never half of one.
"""

from __future__ import annotations

import builtins
import fnmatch
import glob as _glob
import io
import os
import re
import shutil

_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*://")

join = os.path.join          # POSIX joining is right for URIs too: gs://b/run + ckpt
basename = os.path.basename
dirname = os.path.dirname


def is_remote(path) -> bool:
    """Whether `path` names a file system other than the local one (it has a URI scheme)."""
    return isinstance(path, str) and _SCHEME.match(path) is not None


def _gfile():
    import tensorflow as tf   # lazy: local-only callers (the CLI's --help) never load TF
    return tf.io.gfile


def _not_found(path):
    return FileNotFoundError(2, "No such file or directory", path)


def abspath(path) -> str:
    """os.path.abspath for a local path; a URI is already absolute (abspath would make
    `gs://b/run` into `$PWD/gs:/b/run`)."""
    path = os.fspath(path)
    return path if is_remote(path) else os.path.abspath(path)


def realpath(path) -> str:
    path = os.fspath(path)
    return path if is_remote(path) else os.path.realpath(path)


def exists(path) -> bool:
    path = os.fspath(path)
    return _gfile().exists(path) if is_remote(path) else os.path.exists(path)


def lexists(path) -> bool:
    """os.path.lexists; remote stores have no symbolic links, so this is `exists` there."""
    path = os.fspath(path)
    return _gfile().exists(path) if is_remote(path) else os.path.lexists(path)


def isdir(path) -> bool:
    path = os.fspath(path)
    return _gfile().isdir(path) if is_remote(path) else os.path.isdir(path)


def isfile(path) -> bool:
    path = os.fspath(path)
    if is_remote(path):
        gfile = _gfile()
        return gfile.exists(path) and not gfile.isdir(path)
    return os.path.isfile(path)


def islink(path) -> bool:
    path = os.fspath(path)
    return False if is_remote(path) else os.path.islink(path)


def _stat(path):
    gfile = _gfile()
    if not gfile.exists(path):
        raise _not_found(path)
    return gfile.stat(path)


def getsize(path) -> int:
    path = os.fspath(path)
    return _stat(path).length if is_remote(path) else os.path.getsize(path)


def getmtime(path) -> float:
    """Modification time in seconds; 0.0 where a remote file system does not keep one (ram://),
    which callers must read as "unknown"."""
    path = os.fspath(path)
    return _stat(path).mtime_nsec / 1e9 if is_remote(path) else os.path.getmtime(path)


def makedirs(path, exist_ok: bool = False) -> None:
    path = os.fspath(path)
    if not is_remote(path):
        os.makedirs(path, exist_ok=exist_ok)
        return
    gfile = _gfile()
    if gfile.exists(path):
        if not exist_ok or not gfile.isdir(path):
            raise FileExistsError(17, "File exists", path)
        return
    gfile.makedirs(path)


def listdir(path) -> list:
    path = os.fspath(path)
    if not is_remote(path):
        return os.listdir(path)
    gfile = _gfile()
    if not gfile.exists(path):
        raise _not_found(path)
    if not gfile.isdir(path):
        raise NotADirectoryError(20, "Not a directory", path)
    # Object stores list sub-"directories" as "name/".
    return sorted({name.rstrip("/") for name in gfile.listdir(path)})


def glob(pattern, recursive: bool = False) -> list:
    """glob.glob; `recursive` lets `**` match any depth of directories, remote paths included
    (tf.io.gfile.glob has no `**`: the tree under the part before it is walked instead)."""
    pattern = os.fspath(pattern)
    if not is_remote(pattern):
        return _glob.glob(pattern, recursive=recursive)
    if not (recursive and "**" in pattern):
        return _gfile().glob(pattern)
    base, rest = pattern.split("**", 1)
    base, rest = base.rstrip("/"), rest.lstrip("/")
    if not exists(base):
        return []
    return [join(base, name) for name in walk_files(base)
            if fnmatch.fnmatchcase(name, rest) or fnmatch.fnmatchcase(name, "*/" + rest)]


def remove(path) -> None:
    path = os.fspath(path)
    if not is_remote(path):
        os.remove(path)
        return
    gfile = _gfile()
    if not gfile.exists(path):
        raise _not_found(path)
    gfile.remove(path)


def walk_files(path) -> list:
    """Every file under directory `path`, as paths relative to it (sorted; '/'-separated)."""
    path = os.fspath(path)
    found = []
    for name in listdir(path):
        child = join(path, name)
        if isdir(child) and not islink(child):
            found.extend(f"{name}/{inner}" for inner in walk_files(child))
        else:
            found.append(name)
    return sorted(found)


def rmtree(path, ignore_errors: bool = False) -> None:
    path = os.fspath(path)
    if not is_remote(path):
        shutil.rmtree(path, ignore_errors=ignore_errors)
        return
    # File by file: some file systems (ram://, object stores' emulated directories) do not remove
    # a directory's children with it.
    gfile = _gfile()
    try:
        for name in walk_files(path):
            gfile.remove(join(path, name))
        if gfile.exists(path):
            gfile.rmtree(path)
    except (OSError, Exception) as e:   # tf.errors.OpError is not an OSError
        if not ignore_errors:
            if isinstance(e, OSError):
                raise
            raise OSError(f"could not remove {path}: {e}") from None


def replace(src, dst) -> None:
    """os.replace: `dst` is overwritten. Remote: a file rename (a copy and delete on stores
    without rename, where `dst` appears whole because an object is written at once)."""
    src, dst = os.fspath(src), os.fspath(dst)
    if is_remote(src) != is_remote(dst):
        raise OSError(f"cannot move {src} to {dst}: they are on different file systems")
    if not is_remote(src):
        os.replace(src, dst)
        return
    _gfile().rename(src, dst, overwrite=True)


def copy(src, dst, overwrite: bool = True) -> None:
    """Copies one file, between any two file systems."""
    src, dst = os.fspath(src), os.fspath(dst)
    if not is_remote(src) and not is_remote(dst):
        if not overwrite and os.path.exists(dst):
            raise FileExistsError(17, "File exists", dst)
        shutil.copyfile(src, dst)
        return
    _gfile().copy(src, dst, overwrite=overwrite)


class _GFileRaw(io.RawIOBase):
    """A `tf.io.gfile.GFile` as a raw stream, so io's buffering and text decoding (encoding,
    newline handling) wrap it exactly as they wrap a local file."""

    def __init__(self, path: str, mode: str):
        super().__init__()
        self._file = _gfile().GFile(path, mode)
        self._reading = mode.startswith("r")

    def readable(self) -> bool:
        return self._reading

    def writable(self) -> bool:
        return not self._reading

    def readinto(self, buffer) -> int:
        data = self._file.read(len(buffer))
        buffer[:len(data)] = data
        return len(data)

    def write(self, data) -> int:
        self._file.write(bytes(data))
        return len(data)

    def close(self) -> None:
        if not self.closed:
            self._file.close()
        super().close()


def open(path, mode: str = "r", encoding: str | None = None, errors: str | None = None,
         newline: str | None = None):
    """builtins.open for a local path; for a URI the same kind of object (a text stream with
    `encoding`/`newline`, or a buffered binary one) over tf.io.gfile. Modes r, w, a, x (+b)."""
    path = os.fspath(path)
    if not is_remote(path):
        return builtins.open(path, mode, encoding=encoding, errors=errors, newline=newline)
    kind = mode.replace("b", "").replace("t", "")
    if kind not in ("r", "w", "a", "x"):
        raise ValueError(f"unsupported mode {mode!r} for {path}")
    gfile = _gfile()
    if kind == "r":
        if not gfile.exists(path):
            raise _not_found(path)
        if gfile.isdir(path):
            raise IsADirectoryError(21, "Is a directory", path)
    if kind == "x":
        if gfile.exists(path):
            raise FileExistsError(17, "File exists", path)
        kind = "w"
    raw = _GFileRaw(path, kind + "b")
    stream = io.BufferedReader(raw) if kind == "r" else io.BufferedWriter(raw)
    if "b" in mode:
        return stream
    return io.TextIOWrapper(stream, encoding=encoding or "utf-8", errors=errors, newline=newline)
