"""Training checkpoints that survive damage: written, verified, then recorded, and only then are
older ones deleted; restored from the newest one that reads back whole.

A checkpoint is `DIR/ckpt-N.index` + `DIR/ckpt-N.data-*` (tf.train's TensorBundle; N is the
step). `DIR/checkpoint` is TensorFlow's state file (the CheckpointState text proto that
`tf.train.latest_checkpoint` and TensorBoard read), listing the kept checkpoints oldest first.

Writing (`write_checkpoint`), in this order, so that a kill at any point leaves every listed
checkpoint whole:
1. `tf.train.Checkpoint.write` the new prefix;
2. verify it: every tensor read back (TensorFlow checks each tensor's crc32c as it reads);
3. rewrite the state file atomically to list it, with the older ones still kept;
4. delete the files of checkpoints that fell out of the list.

(`tf.train.CheckpointManager` also deletes only after writing, but never reads the new checkpoint
back, and a state file it cannot parse makes it start an empty list, so a garbage state file
meant a silent restart from step 0.)

Restoring (`newest_sound_checkpoint`): the state file must parse (else `CheckpointError`); its
checkpoints are tried newest first; a damaged one (missing index, truncated or empty data, bad
checksum) is skipped with a warning naming its file; when none reads back whole, one
`CheckpointError` names each damaged file.
"""

from __future__ import annotations

import glob
import logging
import os
import re

import tensorflow as tf

from bert_tf import fileio
from bert_tf.atomic import write_text_atomic

logger = logging.getLogger(__name__)

STATE_FILE = "checkpoint"
PREFIX = "ckpt"


class CheckpointError(RuntimeError):
    """A checkpoint directory that cannot be resumed from (the message names the file)."""


def checkpoint_number(prefix: str) -> int:
    match = re.fullmatch(rf"{PREFIX}-(\d+)", os.path.basename(prefix))
    return int(match.group(1)) if match else -1


def read_state(directory: str) -> list:
    """The checkpoints DIR/checkpoint lists, oldest first (absolute prefixes); [] without the
    file. A file TensorFlow cannot parse, or one naming checkpoints outside DIR, is an error."""
    path = os.path.join(directory, STATE_FILE)
    if not fileio.lexists(path):
        return []
    if not fileio.isfile(path):
        raise CheckpointError(f"{path}: not a regular file (expected TensorFlow's checkpoint "
                              "state file)")
    try:
        # get_checkpoint_state logs and returns None on a parse error: a None for a file that
        # exists is the garbage case.
        state = tf.train.get_checkpoint_state(directory)
    except (ValueError, UnicodeDecodeError, tf.errors.OpError) as e:
        state, reason = None, str(e).splitlines()[0] if str(e) else type(e).__name__
    else:
        reason = "not a CheckpointState text proto"
    if state is None:
        raise CheckpointError(
            f"{path}: damaged checkpoint state file ({reason}); not restarting from step 0 over "
            "the existing checkpoints: repair or remove that file to resume from the newest "
            "checkpoint file, or pass --overwrite (or a new --out) to start afresh")
    prefixes = list(state.all_model_checkpoint_paths) or [state.model_checkpoint_path]
    if state.model_checkpoint_path not in prefixes:
        prefixes.append(state.model_checkpoint_path)
    root = fileio.realpath(directory)
    for prefix in prefixes:
        if os.path.dirname(fileio.realpath(prefix)) != root:
            raise CheckpointError(f"{path}: lists {prefix!r}, outside {directory}; a state file "
                                  "may only name checkpoints in its own directory")
    return [os.path.join(directory, os.path.basename(p)) for p in prefixes]


def damage(prefix: str) -> str | None:
    """Why the checkpoint at `prefix` cannot be restored (naming the file), or None when every
    tensor reads back whole."""
    index = prefix + ".index"
    if not fileio.isfile(index):
        return f"{index} is missing"
    if fileio.getsize(index) == 0:
        return f"{index} is empty"
    data = sorted(fileio.glob(glob.escape(prefix) + ".data-*-of-*"))
    if not data:
        return f"{prefix}.data-00000-of-00001 is missing"
    for path in data:
        if fileio.getsize(path) == 0:
            return f"{path} is empty"
    try:
        # The prefix's reader directly: load_checkpoint first asks whether `prefix` is a
        # directory, which some remote file systems answer yes to for any path prefix.
        reader = tf.compat.v1.train.NewCheckpointReader(prefix)
        for name in reader.get_variable_to_dtype_map():
            reader.get_tensor(name)   # one tensor at a time: memory stays at the largest one
    except Exception as e:  # noqa: BLE001 - the reader raises IndexError, OpError, ValueError...
        first = str(e).splitlines()[0] if str(e) else ""
        return f"{data[0] if len(data) == 1 else prefix + '.data-*'} does not read back " \
               f"({type(e).__name__}: {first})"
    return None


def newest_sound_checkpoint(directory: str) -> str | None:
    """The newest listed checkpoint that reads back whole (None when DIR lists none). Damaged
    newer ones are skipped with a warning; if every listed one is damaged: `CheckpointError`."""
    prefixes = read_state(directory)
    problems = []
    for prefix in reversed(prefixes):
        problem = damage(prefix)
        if problem is None:
            for skipped in problems:
                logger.warning("damaged checkpoint skipped: %s; resuming from the previous one, "
                               "%s", skipped, prefix)
            return prefix
        problems.append(problem)
    if problems:
        raise CheckpointError(
            ("the only checkpoint is damaged: " if len(problems) == 1 else
             "every checkpoint is damaged: ") + "; ".join(problems)
            + ". Remove the checkpoints directory (or pass --overwrite / a new --out) to start "
              "afresh")
    return None


def write_checkpoint(checkpoint: tf.train.Checkpoint, directory: str, number: int,
                     keep: int, verify: bool = True) -> str:
    """Writes `checkpoint` as DIR/ckpt-`number`, verifies it, lists it in DIR/checkpoint with
    the `keep - 1` newest older ones, then deletes the others (see the module docstring).
    Checkpoints numbered `number` or above (a damaged future this run is redoing) are dropped."""
    if keep < 1:
        raise CheckpointError(f"keep must be at least 1 checkpoint, got {keep}")
    fileio.makedirs(directory, exist_ok=True)
    previous = read_state(directory)
    prefix = os.path.join(directory, f"{PREFIX}-{number}")
    # As `Checkpoint.save` would: count the save, which also creates `save_counter` before the
    # write, so every checkpoint holds it and restoring one matches every object.
    checkpoint.save_counter.assign_add(1)
    checkpoint.write(prefix)
    if verify:
        problem = damage(prefix)
        if problem is not None:
            raise CheckpointError(f"the checkpoint just written does not read back: {problem}; "
                                  "the previous checkpoints are kept")
    older = [p for p in previous if checkpoint_number(p) < number]
    kept = older[-(keep - 1):] if keep > 1 else []
    kept.append(prefix)
    # The CheckpointState text proto, with names relative to DIR as CheckpointManager writes
    # them (the run directory can move); atomic, so a reader sees the old list or the new one.
    names = [os.path.basename(p) for p in kept]
    write_text_atomic(os.path.join(directory, STATE_FILE), "".join(
        [f'model_checkpoint_path: "{names[-1]}"\n']
        + [f'all_model_checkpoint_paths: "{name}"\n' for name in names]))
    for stale in previous:
        if stale not in kept:
            for path in fileio.glob(glob.escape(stale) + ".index") + \
                    fileio.glob(glob.escape(stale) + ".data-*-of-*"):
                fileio.remove(path)
    return prefix
