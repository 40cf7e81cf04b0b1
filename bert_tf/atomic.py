"""Writing files and directories so that a reader (or a crash) never sees them half written:
everything is written under a temporary name in the same directory, then renamed into place
(atomic on POSIX within one filesystem); a failure removes the temporary and leaves the old file.

Leftovers of killed writers: a temporary is named `.tmp-NAME-PID@HOST-RANDOM[SUFFIX]` (hidden, so a
model server never takes it for a version; PID and HOST say which process owns it). Every write
into a directory first removes the temporaries there (`clean_stale_temps`) that are
  * owned by a process of this host (same HOST tag) that no longer runs (its PID is gone), or
  * older than `STALE_AFTER_S` (24 hours) since their last modification, whoever owns them,
and logs each removal as a warning. A temporary of this process is never removed by age alone
within the day, nor one of a live process (a PID reused by another process keeps the temporary
until it is a day old). Names that do not follow the pattern (a user's own hidden files, older
temporaries without an owner) are never touched.

Remote directories (`gs://`, any URI `bert_tf.fileio` serves through tf.io.gfile) have no atomic
rename of a directory: a directory published there is built in a local staging directory and
uploaded file by file with its completion marker (`MARKERS`: task.json, saved_model.pb,
config.json, ...) last, so a reader that checks for the marker never takes half a result for a
whole one. A single remote file is written under a temporary name and renamed (object stores
make the new object visible at once).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import shutil
import socket
import tempfile
import time
import uuid

from bert_tf import fileio

logger = logging.getLogger(__name__)

STALE_AFTER_S = 24 * 3600
# The files whose presence says a directory is complete (the readers of each kind check for it);
# uploaded last when a directory is published to a remote file system.
MARKERS = ("saved_model.pb", "config.json", "task.json", "metadata.json", "run.json")
# The host tag: the first label of the host name, letters and digits only (a path component).
HOST_TAG = re.sub(r"[^A-Za-z0-9]", "", socket.gethostname().split(".")[0])[:32] or "host"
# .tmp-NAME-PID@HOST-RANDOM, then a suffix (".keras", "-assets", ...); mkdtemp/mkstemp's RANDOM
# has no '-', so the greedy NAME leaves the last "-PID@HOST-" to the groups.
_TEMP_NAME = re.compile(r"\.tmp-.*-(\d+)@([A-Za-z0-9]+)-[a-z0-9_]+(?:[.-].*)?", re.DOTALL)


def temp_prefix(name: str) -> str:
    """The prefix of this process's temporaries for `name` (mkstemp/mkdtemp add RANDOM)."""
    return f".tmp-{name[:64]}-{os.getpid()}@{HOST_TAG}-"   # (file names end at 255 bytes)


def _process_is_gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except (PermissionError, OverflowError, OSError):
        return False    # alive (someone else's), or a PID we cannot ask about: keep
    return False


def is_stale_temp(path: str, now: float | None = None) -> bool:
    """True for a temporary of a writer that cannot finish it (the rule in the module docstring)."""
    match = _TEMP_NAME.fullmatch(os.path.basename(path))
    if match is None:
        return False
    pid, host = int(match.group(1)), match.group(2)
    if host == HOST_TAG and pid != os.getpid() and _process_is_gone(pid):
        return True
    try:
        mtime = (fileio.getmtime(path) if fileio.is_remote(path) else os.lstat(path).st_mtime)
    except FileNotFoundError:
        return False
    if mtime <= 0:
        return False    # a remote file system that keeps no times (ram://): age unknown
    return (time.time() if now is None else now) - mtime > STALE_AFTER_S


def clean_stale_temps(directory: str) -> list:
    """Removes the stale temporaries directly in `directory`; returns their paths."""
    try:
        names = fileio.listdir(directory)
    except (FileNotFoundError, NotADirectoryError):
        return []
    removed = []
    for name in names:
        path = fileio.join(directory, name)
        if not name.startswith(".tmp-") or not is_stale_temp(path):
            continue
        try:
            if fileio.isdir(path) and not fileio.islink(path):
                fileio.rmtree(path)
            else:
                fileio.remove(path)
        except FileNotFoundError:
            continue    # another writer cleaned it first
        except OSError as e:
            logger.warning("could not remove the stale temporary %s: %s", path, e)
            continue
        logger.warning("removed %s, left by a writer that did not finish", path)
        removed.append(path)
    return removed


def umask_mode(path: str) -> str:
    """Gives a temporary from mkstemp/mkdtemp (created 0600/0700: private) the mode a plain
    open()/mkdir() would have given it, 0666/0777 less the process umask, so that what is
    published through it is readable as usual (a model server running as another user must be
    able to read a SavedModel version, models.config, model.keras). Returns `path`."""
    if fileio.is_remote(path):
        return path     # object stores' permissions are the bucket's, not a mode
    mask = os.umask(0)
    os.umask(mask)
    os.chmod(path, (0o777 if os.path.isdir(path) else 0o666) & ~mask)
    return path


@contextlib.contextmanager
def atomic_path(path: str, suffix: str = ""):
    """Yields a temporary file path next to `path`; on success it is renamed over `path`, on any
    exception it is removed. `suffix` keeps writers that dispatch on the extension happy
    (e.g. `model.save` wants ".keras")."""
    if fileio.is_remote(path):
        with _remote_atomic_path(path, suffix) as tmp:
            yield tmp
        return
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    clean_stale_temps(directory)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=temp_prefix(os.path.basename(path)),
                               suffix=suffix)
    os.close(fd)
    umask_mode(tmp)
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


@contextlib.contextmanager
def _remote_atomic_path(path: str, suffix: str):
    directory = fileio.dirname(path)
    fileio.makedirs(directory, exist_ok=True)
    clean_stale_temps(directory)
    tmp = fileio.join(directory, temp_prefix(fileio.basename(path)) + uuid.uuid4().hex[:8] + suffix)
    try:
        yield tmp
        fileio.replace(tmp, path)
    except BaseException:
        if fileio.exists(tmp):
            fileio.remove(tmp)
        raise


def upload_directory(local: str, remote: str, order=None) -> None:
    """Copies the files under `local` into `remote` (created; existing files overwritten), one
    top-level entry at a time in the order of `order` (a sort key over names; default: the
    completion `MARKERS` last), a subdirectory's files all before the next entry."""
    order = order or (lambda name: (name in MARKERS, name))
    fileio.makedirs(remote, exist_ok=True)
    for name in sorted(os.listdir(local), key=order):
        source = os.path.join(local, name)
        inner = fileio.walk_files(source) if os.path.isdir(source) else [None]
        for relative in inner:
            src = source if relative is None else os.path.join(source, relative)
            dst = fileio.join(remote, name) if relative is None else \
                fileio.join(remote, name, relative)
            fileio.makedirs(fileio.dirname(dst), exist_ok=True)
            fileio.copy(src, dst, overwrite=True)


def write_bytes_atomic(path: str, data: bytes) -> str:
    with atomic_path(path) as tmp:
        with fileio.open(tmp, "wb") as f:
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
    polling the parent never sees `tmp` as a version (its name is not an integer).

    If `final` appears meanwhile (another writer published it), the rename fails cleanly (rename
    over a non-empty directory is an error, and an existing one is never replaced); then
    `next_final()`, when given, names another target to try (e.g. the next free version: two
    concurrent exports both publish), else FileExistsError. `self.final` is where it went.

    A remote `final`: `tmp` is a local directory, uploaded on success with the `MARKERS` last.
    """

    RETRIES = 100

    def __init__(self, final: str, next_final=None):
        self.final = fileio.abspath(final)
        self.next_final = next_final
        self.path = None

    def __enter__(self) -> str:
        self.path = _local_staging(self.final)
        return self.path

    def _publish(self) -> None:
        for _ in range(self.RETRIES):
            if fileio.is_remote(self.final):
                if not fileio.exists(self.final):
                    upload_directory(self.path, self.final)
                    return
            elif not os.path.lexists(self.final):
                try:
                    os.rename(self.path, self.final)
                    return
                except OSError:   # ENOTEMPTY/EEXIST: published by someone else just now
                    if not os.path.lexists(self.final):
                        raise
            if self.next_final is None:
                break
            self.final = fileio.abspath(self.next_final())
        raise FileExistsError(f"{self.final} appeared while it was being written")

    def __exit__(self, exc_type, exc, tb):
        try:
            if exc_type is None:
                self._publish()
        finally:
            if os.path.isdir(self.path):
                shutil.rmtree(self.path, ignore_errors=True)
        return False


def _local_staging(directory: str) -> str:
    """A fresh hidden directory to build `directory` in: its sibling when local (one rename
    publishes it), a local temporary directory when `directory` is remote (uploaded)."""
    prefix = temp_prefix(fileio.basename(directory.rstrip("/")))
    if fileio.is_remote(directory):
        return tempfile.mkdtemp(prefix=prefix)
    parent = os.path.dirname(os.path.abspath(directory))
    os.makedirs(parent, exist_ok=True)
    clean_stale_temps(parent)
    return umask_mode(tempfile.mkdtemp(dir=parent, prefix=prefix))


@contextlib.contextmanager
def staged_directory(directory: str, publish_order=None):
    """Yields a hidden staging directory next to `directory` to write a whole set of files into.

    On success a new `directory` appears by one rename; an existing one gets each staged file
    renamed over its namesake in `publish_order` (a sort key over file names; e.g. data before the
    index that points at it, config last) and keeps its other files. On failure, or after
    publishing, the staging directory is removed. A remote `directory` is written by uploading
    the staged files in the same order.
    """
    directory = os.fspath(directory)
    staging = _local_staging(directory)
    try:
        yield staging
        if fileio.is_remote(directory):
            upload_directory(staging, directory, publish_order)
            return
        if not os.path.exists(directory):
            os.rename(staging, directory)
            return
        for name in sorted(os.listdir(staging), key=publish_order):
            os.replace(os.path.join(staging, name), os.path.join(directory, name))
    finally:
        if os.path.isdir(staging):
            shutil.rmtree(staging)


@contextlib.contextmanager
def replaced_directory(directory: str):
    """Yields a hidden staging directory whose content replaces `directory` as a whole on success
    (none of the old files stay). Local: the old directory is moved aside and the new one renamed
    in, so a reader sees the old set or the new one, and a writer killed midway leaves the old
    directory (or none) plus a stale temporary the next write removes. Remote: the old directory
    is removed, then the new one uploaded with its completion marker last. On failure the old
    directory is untouched and the staging directory removed."""
    directory = os.fspath(directory)
    staging = _local_staging(directory)
    old = None
    try:
        yield staging
        if fileio.is_remote(directory):
            if fileio.exists(directory):
                fileio.rmtree(directory)
            upload_directory(staging, directory)
            return
        parent = os.path.dirname(os.path.abspath(directory))
        if os.path.isdir(directory):
            old = tempfile.mkdtemp(dir=parent, prefix=temp_prefix(os.path.basename(directory)))
            os.rmdir(old)
            os.rename(directory, old)
        os.rename(staging, directory)
    finally:
        for leftover in (staging, old):
            if leftover and os.path.isdir(leftover):
                shutil.rmtree(leftover, ignore_errors=True)
