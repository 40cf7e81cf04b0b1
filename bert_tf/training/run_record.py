"""The run record: what defines a training run, kept in OUT/run.json, so that an output directory
is only ever resumed by the run that started it.

    OUT/run.json   {"record": {"version": 1, "kind": "finetune" | "pretrain",
                               "defines": {every setting that changes the result: data files'
                                           content sha256, labels, vocabulary sha256, every
                                           hyperparameter; compared key by key},
                               "files": {the paths that were hashed (for people; not compared)}},
                    ...the command's other settings (not compared: devices, logging, XLA)}

`inspect_output` runs before any work: a rerun into OUT whose record differs in any `defines`
key is refused with one `RunMismatchError` naming each difference (old → new) and the ways
forward (the same settings, `--overwrite`, or another `--out`). An OUT that holds a run's files
but no record (written by a bert_tf before the record existed) cannot be verified and is refused
the same way. `--overwrite` deletes the old run's files (`clear_run`), but only when OUT holds
nothing but files that run writes.
"""

from __future__ import annotations

import hashlib
import json
import os

from bert_tf import fileio

RECORD_FILE = "run.json"
RECORD_VERSION = 1
_CHUNK = 1 << 20


class RunRecordError(ValueError):
    """An output directory that cannot take this run (the message says why and what to do)."""


class RunMismatchError(RunRecordError):
    """A rerun whose settings differ from the record of the run already in OUT."""


def file_sha256(path: str) -> str:
    """Content hash of one file, read in 1 MiB chunks (tf.io.gfile: local or remote paths)."""
    import tensorflow as tf
    digest = hashlib.sha256()
    try:
        with tf.io.gfile.GFile(path, "rb") as f:
            while chunk := f.read(_CHUNK):
                digest.update(chunk)
    except tf.errors.NotFoundError:
        raise RunRecordError(f"{path}: no such file") from None
    except tf.errors.PermissionDeniedError:
        raise RunRecordError(f"{path}: permission denied") from None
    except tf.errors.FailedPreconditionError as e:   # a directory
        raise RunRecordError(f"{path}: cannot read it ({e.message})") from None
    return digest.hexdigest()


def make_record(kind: str, defines: dict, files: dict) -> dict:
    # Through JSON once, so that the fresh record compares equal to one read back (tuples become
    # lists, float keys strings...).
    return json.loads(json.dumps({"version": RECORD_VERSION, "kind": kind, "defines": defines,
                                  "files": files}))


_ABSENT = object()   # a key one record has and the other lacks


def _show(value) -> str:
    if value is _ABSENT:
        return "(absent)"
    if isinstance(value, str) and len(value) == 64 and all(c in "0123456789abcdef" for c in value):
        return value[:12] + "…"          # a sha256
    text = json.dumps(value, sort_keys=True, ensure_ascii=False)
    return text if len(text) <= 80 else text[:77] + "..."


def differences(old: dict, new: dict, names: dict | None = None) -> list:
    """['--learning-rate: 5e-05 → 0.001', ...] for every `defines` key whose value differs
    (`names` maps keys to the flag the user knows them by)."""
    names = names or {}
    found = []
    for key in sorted(set(old) | set(new)):
        before, after = old.get(key, _ABSENT), new.get(key, _ABSENT)
        if isinstance(before, dict) and isinstance(after, dict):   # e.g. the model config
            found += differences(before, after, {k: f"{names.get(key, key)}.{k}"
                                                 for k in set(before) | set(after)})
        elif before is _ABSENT or after is _ABSENT or before != after:
            found.append(f"{names.get(key, key)}: {_show(before)} → {_show(after)}")
    return found


def read_run_file(out: str) -> dict | None:
    path = os.path.join(out, RECORD_FILE)
    if not fileio.lexists(path):
        return None
    try:
        with fileio.open(path, encoding="utf-8") as f:
            value = json.load(f)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise RunRecordError(f"{path}: unreadable run record ({e}); pass --overwrite to delete "
                             "the old run and start afresh, or choose a new --out") from None
    if not isinstance(value, dict):
        raise RunRecordError(f"{path}: expected a JSON object")
    return value


def _is_scratch(name: str) -> bool:
    """Temporaries the atomic writers leave behind when killed."""
    return name.startswith((".tmp-", ".old-"))


def inspect_output(out: str, record: dict, run_files: tuple, overwrite: bool = False,
                   names: dict | None = None) -> tuple:
    """Decides, before any work, what a run with `record` may do with `out`:
    ("new", None): nothing of a run there; ("resume", run.json's dict): the same run (the caller
    resumes it, or sees that it is complete); ("overwrite", None): `overwrite` and OUT holds only
    a run's files (call `clear_run`). Anything else raises `RunRecordError`.
    `run_files`: the names a run of this kind writes in OUT (run.json included)."""
    if fileio.lexists(out) and not fileio.isdir(out):
        raise RunRecordError(f"--out {out}: exists and is not a directory")
    entries = fileio.listdir(out) if fileio.isdir(out) else []
    ours = [e for e in entries if e in run_files or _is_scratch(e)]
    if overwrite:
        foreign = sorted(e for e in entries if e not in ours)
        if foreign:
            raise RunRecordError(
                f"--overwrite: {out} holds files a run does not write ({', '.join(foreign[:5])}"
                f"{', ...' if len(foreign) > 5 else ''}); not deleting anything there: choose a "
                "new --out, or remove it yourself")
        return ("overwrite", None) if ours else ("new", None)
    if not ours:
        return "new", None
    hint = "pass --overwrite to delete the old run and start afresh, or choose a new --out"
    old = read_run_file(out)
    if old is None or not isinstance(old.get("record"), dict):
        found = sorted(e for e in ours if not _is_scratch(e))
        raise RunRecordError(
            f"{out} already holds {', '.join(found) or 'a run'} but no run record ("
            f"{RECORD_FILE} with a 'record', written since this check exists): the old run's "
            f"data and settings cannot be verified, so it is not resumed; {hint}")
    old_record = old["record"]
    if old_record.get("kind") != record["kind"]:
        raise RunMismatchError(f"{out} holds a {old_record.get('kind')} run, not a "
                               f"{record['kind']} run; {hint}")
    if old_record.get("version") != record["version"]:
        raise RunRecordError(f"{os.path.join(out, RECORD_FILE)}: record version "
                             f"{old_record.get('version')!r}, this bert_tf writes "
                             f"{record['version']}; {hint}")
    found = differences(old_record.get("defines", {}), record["defines"], names)
    if found:
        raise RunMismatchError(
            f"{out} holds a run with other settings; a run resumes only as it started. "
            f"Differences (old → new): " + "; ".join(found) + f". Rerun with the old settings, "
            f"or {hint}")
    return "resume", old


def clear_run(out: str, run_files: tuple) -> None:
    """Deletes the run's files in OUT (after `inspect_output` said "overwrite"): only the names
    in `run_files` and the writers' temporaries; OUT itself and anything else stay."""
    for name in fileio.listdir(out):
        if name not in run_files and not _is_scratch(name):
            continue
        path = os.path.join(out, name)
        if fileio.isdir(path) and not fileio.islink(path):
            fileio.rmtree(path)
        else:
            fileio.remove(path)


def write_run_file(out: str, record: dict, **other) -> None:
    """OUT/run.json (atomically): the record plus the command's other settings."""
    from bert_tf.atomic import write_json_atomic
    write_json_atomic(os.path.join(out, RECORD_FILE), {**other, "record": record},
                      sort_keys=True, default=str)
