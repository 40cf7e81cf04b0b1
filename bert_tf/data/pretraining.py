"""Static pre-training data: documents -> sentence pairs (NSP) -> masked instances (MLM).

This is google-research/bert's `create_pretraining_data.py` algorithm, reproduced call for call on
the same `random.Random` stream, so for one input file and a given seed the instances are the ones
that script makes from the same word pieces (a test checks this against the script from the
`bert-tensorflow` package). The rules, with the reasons the original gives:

* Documents are lists of "sentences" (one input line each), each a list of word-piece strings.
  Documents are shuffled, then visited `dupe_factor` times; every visit draws new pairs and new
  masks, so each copy of the data differs.
* A document is cut into chunks of whole sentences that just reach a target length. The target is
  `max_seq_length - 3` (room for [CLS], [SEP], [SEP]), except with probability `short_seq_prob`
  when it is `randint(2, max_seq_length - 3)`: some short sequences reduce the mismatch between
  pre-training and fine-tuning on short inputs. Splitting on sentence boundaries (not at an
  arbitrary token) keeps next sentence prediction from being trivially easy.
* A chunk is split at a random sentence boundary into A and B. With probability 0.5 (always when
  the chunk is a single sentence) B is replaced by text from a random other document (up to 10
  draws to avoid the current one; the 10th draw is used even if it is the current one) starting at
  a random sentence, and the sentences of the chunk that B did not use are "put back" to start the
  next chunk. `next_sentence_labels` is 1 for such a random B.
* The pair is truncated to `max_seq_length - 3` by removing one token at a time from the longer
  side (B on ties), from its front or back with equal probability, which avoids a bias toward
  either end.
* Masking: every token except [CLS]/[SEP] is a candidate (with whole-word masking, a candidate is
  a word: a piece and the "##" pieces after it; with a word segmenter, also a CJK character and
  the characters after it that are `WordContinuation`s, Chinese-BERT-wwm's words -- see
  `bert_tf.data.word_segmentation`). Candidates are shuffled and taken in that order
  until `min(max_predictions_per_seq, max(1, round(len(tokens) * masked_lm_prob)))` tokens are
  chosen; a whole word that would overshoot that number is skipped. Each chosen token becomes
  [MASK] 80% of the time, stays itself 10%, and becomes a random word of the *whole* vocabulary
  10% (special tokens included, as in the original). Positions are sorted.

Deliberate deviation, for parallelism: google's script pools every input file into one document
list. Here each input file is one independent stream (`random.Random(random_seed + file_index)`,
random-next documents drawn from that file) -- exactly what running the original script once per
file does, which is how large corpora were prepared with it anyway. The per-file instance lists
are then concatenated in file order and shuffled once with `random.Random(random_seed)`. So the
output does not depend on how many worker processes ran, and with a single input file it is the
original script's output for `random_seed`.
"""

from __future__ import annotations

import collections
import concurrent.futures
import dataclasses
import glob
import logging
import multiprocessing
import os
import random
from typing import Callable, Iterable, Sequence

from bert_tf import fileio
from bert_tf.data.word_segmentation import is_word_continuation, validate_segmenter_option

logger = logging.getLogger(__name__)

CLS, SEP, MASK = "[CLS]", "[SEP]", "[MASK]"


class PretrainingDataError(ValueError):
    """Bad input or options for pre-training data creation (the message names the file or option)."""


@dataclasses.dataclass
class TrainingInstance:
    """One sentence pair with its masked LM targets (google-research/bert's `TrainingInstance`)."""

    tokens: list            # [CLS] A [SEP] B [SEP], word-piece strings, masks applied
    segment_ids: list       # 0 for [CLS] A [SEP], 1 for B [SEP]
    is_random_next: bool    # B came from another document (next_sentence_labels = 1)
    masked_lm_positions: list  # sorted positions into `tokens`
    masked_lm_labels: list     # the original word pieces at those positions


@dataclasses.dataclass(frozen=True)
class PretrainingOptions:
    """The knobs of google-research/bert's script, with its defaults."""

    max_seq_length: int = 128
    max_predictions_per_seq: int = 20
    masked_lm_prob: float = 0.15
    dupe_factor: int = 10
    short_seq_prob: float = 0.1
    whole_word_mask: bool = False
    random_seed: int = 12345
    word_segmenter: str = "none"  # words of text written without spaces (`word_segmentation`)

    def validate(self) -> "PretrainingOptions":
        if self.max_seq_length < 5:
            raise PretrainingDataError(
                f"max_seq_length must be at least 5 ([CLS] a [SEP] b [SEP]), got {self.max_seq_length}")
        if self.max_predictions_per_seq < 1:
            raise PretrainingDataError(
                f"max_predictions_per_seq must be at least 1, got {self.max_predictions_per_seq}")
        if not 0.0 < self.masked_lm_prob < 1.0:
            raise PretrainingDataError(f"masked_lm_prob must be in (0, 1), got {self.masked_lm_prob}")
        if self.dupe_factor < 1:
            raise PretrainingDataError(f"dupe_factor must be at least 1, got {self.dupe_factor}")
        if not 0.0 <= self.short_seq_prob <= 1.0:
            raise PretrainingDataError(f"short_seq_prob must be in [0, 1], got {self.short_seq_prob}")
        validate_segmenter_option(self.word_segmenter, self.whole_word_mask)
        return self


# ----------------------------------------------------------------------------------------------
# The algorithm (pure Python, strings in, strings out).
# ----------------------------------------------------------------------------------------------

MaskedLmInstance = collections.namedtuple("MaskedLmInstance", ["index", "label"])


def truncate_seq_pair(tokens_a: list, tokens_b: list, max_num_tokens: int, rng: random.Random) -> None:
    """Truncates in place, one token at a time from the longer list (B on ties), at a random end."""
    while len(tokens_a) + len(tokens_b) > max_num_tokens:
        trunc_tokens = tokens_a if len(tokens_a) > len(tokens_b) else tokens_b
        assert len(trunc_tokens) >= 1
        if rng.random() < 0.5:
            del trunc_tokens[0]
        else:
            trunc_tokens.pop()


def num_to_predict(num_tokens: int, masked_lm_prob: float, max_predictions_per_seq: int) -> int:
    """How many tokens a sequence of `num_tokens` (with [CLS]/[SEP]) gets masked.

    Python 3's `round` (half to even) on the float64 product, as the original computes it."""
    return min(max_predictions_per_seq, max(1, int(round(num_tokens * masked_lm_prob))))


def candidate_words(tokens: Sequence[str], whole_word_mask: bool) -> list:
    """The masking candidates of one sequence: lists of positions, in order, [CLS]/[SEP] left out.

    Without whole-word masking every position is its own candidate. With it, a "##" piece joins
    the word before it -- like the original, this looks at the previous *candidate*, so a "##"
    piece right after [SEP] joins the last word of segment A -- and a `WordContinuation` joins the
    word of the token right before it (never across [CLS]/[SEP], as in the dynamic path)."""
    cand_indexes = []
    for i, token in enumerate(tokens):
        if token == CLS or token == SEP:
            continue
        joins = whole_word_mask and cand_indexes and (
            token.startswith("##")
            or (is_word_continuation(token) and cand_indexes[-1][-1] == i - 1))
        if joins:
            cand_indexes[-1].append(i)
        else:
            cand_indexes.append([i])
    return cand_indexes


def create_masked_lm_predictions(tokens: Sequence[str], masked_lm_prob: float,
                                 max_predictions_per_seq: int, vocab_words: Sequence[str],
                                 rng: random.Random, whole_word_mask: bool = False):
    """Returns (output_tokens, masked_lm_positions, masked_lm_labels); see the module docstring."""
    cand_indexes = candidate_words(tokens, whole_word_mask)
    rng.shuffle(cand_indexes)
    output_tokens = list(tokens)
    budget = num_to_predict(len(tokens), masked_lm_prob, max_predictions_per_seq)

    masked_lms = []
    covered_indexes = set()
    for index_set in cand_indexes:
        if len(masked_lms) >= budget:
            break
        # A whole word that would overshoot the budget is skipped, not cut.
        if len(masked_lms) + len(index_set) > budget:
            continue
        if any(index in covered_indexes for index in index_set):
            continue
        for index in index_set:
            covered_indexes.add(index)
            if rng.random() < 0.8:  # 80%: [MASK]
                masked_token = MASK
            elif rng.random() < 0.5:  # 10%: keep the original token
                masked_token = tokens[index]
            else:  # 10%: a random word of the whole vocabulary
                masked_token = vocab_words[rng.randint(0, len(vocab_words) - 1)]
            output_tokens[index] = masked_token
            masked_lms.append(MaskedLmInstance(index=index, label=tokens[index]))

    masked_lms.sort(key=lambda x: x.index)
    return (output_tokens, [p.index for p in masked_lms], [p.label for p in masked_lms])


# (tokens, segment_ids, rng) -> (tokens, masked_lm_positions, masked_lm_labels)
MaskFn = Callable[[list, list, random.Random], tuple]


def create_instances_from_document(all_documents: Sequence[Sequence[Sequence[str]]],
                                   document_index: int, max_seq_length: int, short_seq_prob: float,
                                   rng: random.Random, mask_fn: MaskFn | None,
                                   cls=CLS, sep=SEP) -> list:
    """Sentence pairs from one document, masked by `mask_fn` as they are made.

    Tokens may be strings or ids (then pass `cls`/`sep` as ids).
    `mask_fn=None` makes unmasked pairs (for dynamic masking); it then draws nothing from `rng`,
    so pairing differs from the masked run's after the first pair."""
    document = all_documents[document_index]
    max_num_tokens = max_seq_length - 3  # [CLS], [SEP], [SEP]

    target_seq_length = max_num_tokens
    if rng.random() < short_seq_prob:
        target_seq_length = rng.randint(2, max_num_tokens)

    instances = []
    current_chunk = []
    current_length = 0
    i = 0
    while i < len(document):
        segment = document[i]
        current_chunk.append(segment)
        current_length += len(segment)
        if i == len(document) - 1 or current_length >= target_seq_length:
            if current_chunk:
                # `a_end`: how many sentences of the chunk go into A.
                a_end = 1
                if len(current_chunk) >= 2:
                    a_end = rng.randint(1, len(current_chunk) - 1)
                tokens_a = []
                for j in range(a_end):
                    tokens_a.extend(current_chunk[j])

                tokens_b = []
                if len(current_chunk) == 1 or rng.random() < 0.5:
                    is_random_next = True
                    target_b_length = target_seq_length - len(tokens_a)
                    for _ in range(10):
                        random_document_index = rng.randint(0, len(all_documents) - 1)
                        if random_document_index != document_index:
                            break
                    random_document = all_documents[random_document_index]
                    random_start = rng.randint(0, len(random_document) - 1)
                    for j in range(random_start, len(random_document)):
                        tokens_b.extend(random_document[j])
                        if len(tokens_b) >= target_b_length:
                            break
                    # The chunk's sentences after A were not used: put them back.
                    i -= len(current_chunk) - a_end
                else:
                    is_random_next = False
                    for j in range(a_end, len(current_chunk)):
                        tokens_b.extend(current_chunk[j])
                truncate_seq_pair(tokens_a, tokens_b, max_num_tokens, rng)
                assert len(tokens_a) >= 1 and len(tokens_b) >= 1

                tokens = [cls, *tokens_a, sep, *tokens_b, sep]
                segment_ids = [0] * (len(tokens_a) + 2) + [1] * (len(tokens_b) + 1)
                positions, labels = [], []
                if mask_fn is not None:
                    tokens, positions, labels = mask_fn(tokens, segment_ids, rng)
                instances.append(TrainingInstance(tokens=tokens, segment_ids=segment_ids,
                                                  is_random_next=is_random_next,
                                                  masked_lm_positions=positions,
                                                  masked_lm_labels=labels))
            current_chunk = []
            current_length = 0
        i += 1
    return instances


def create_training_instances(documents: Sequence[Sequence[Sequence[str]]], vocab_words: Sequence[str],
                              options: PretrainingOptions, rng: random.Random) -> list:
    """google's `create_training_instances` after tokenization: one stream over `documents`.

    `documents` is a list of documents, each a list of sentences, each a list of word pieces; empty
    documents are dropped. The list is shuffled with `rng` (a copy is made; the input is kept)."""
    all_documents = [list(d) for d in documents if d]
    rng.shuffle(all_documents)

    def mask_fn(tokens, segment_ids, rng):
        return create_masked_lm_predictions(tokens, options.masked_lm_prob,
                                            options.max_predictions_per_seq, vocab_words, rng,
                                            options.whole_word_mask)

    instances = []
    for _ in range(options.dupe_factor):
        for document_index in range(len(all_documents)):
            instances.extend(create_instances_from_document(
                all_documents, document_index, options.max_seq_length, options.short_seq_prob,
                rng, mask_fn))
    rng.shuffle(instances)
    return instances


def file_rng(random_seed: int, file_index: int) -> random.Random:
    """The stream of input file `file_index` (file 0 gets exactly `random.Random(random_seed)`)."""
    return random.Random(random_seed + file_index)


def _instances_for_file(job: tuple) -> list:
    """Worker entry point (a top-level function so a spawned process can unpickle it)."""
    file_index, documents, vocab_words, options = job
    return create_training_instances(documents, vocab_words, options,
                                     file_rng(options.random_seed, file_index))


def create_instances_for_files(documents_per_file: Sequence[Sequence], vocab_words: Sequence[str],
                               options: PretrainingOptions, num_workers: int = 1,
                               progress: Callable[[int], None] | None = None) -> list:
    """Instances for several tokenized files: one stream per file, then one global shuffle.

    Workers are *spawned* processes (TensorFlow, loaded in this one, is not fork-safe); each gets
    one file's documents and returns its instances. The result is the same for any `num_workers`.
    `progress(n)` is called with the number of instances of each finished file."""
    options.validate()
    jobs = [(i, docs, list(vocab_words), options) for i, docs in enumerate(documents_per_file)]
    for i, docs in enumerate(documents_per_file):
        if sum(1 for d in docs if d) < 2:
            logger.warning("input file #%d has fewer than 2 non-empty documents: its random "
                           "next sentences come from the same document", i)
    results: list = [None] * len(jobs)
    num_workers = max(1, min(num_workers, len(jobs)))
    if num_workers == 1:
        for i, job in enumerate(jobs):
            results[i] = _instances_for_file(job)
            if progress:
                progress(len(results[i]))
    else:
        context = multiprocessing.get_context("spawn")
        with concurrent.futures.ProcessPoolExecutor(num_workers, mp_context=context) as pool:
            futures = {pool.submit(_instances_for_file, job): i for i, job in enumerate(jobs)}
            for future in concurrent.futures.as_completed(futures):
                results[futures[future]] = future.result()
                if progress:
                    progress(len(results[futures[future]]))
    if len(results) == 1:
        return results[0]  # already shuffled by its own stream: the original script's output
    instances = [inst for file_instances in results for inst in file_instances]
    random.Random(options.random_seed).shuffle(instances)
    return instances


# ----------------------------------------------------------------------------------------------
# Files in, TFRecords out.
# ----------------------------------------------------------------------------------------------

def expand_input_files(patterns: Iterable[str]) -> list:
    """Each pattern (a path, a glob, or a comma-separated list of them) in order; matches sorted."""
    files = []
    for pattern in patterns:
        for part in (p.strip() for p in str(pattern).split(",")):
            if not part:
                continue
            matches = sorted(fileio.glob(part)) if glob.has_magic(part) else [part]
            if not matches:
                raise PretrainingDataError(f"input pattern {part!r} matches no file")
            for path in matches:
                if not fileio.isfile(path):
                    raise PretrainingDataError(f"input file {path!r} does not exist")
                if path not in files:
                    files.append(path)
    if not files:
        raise PretrainingDataError("no input files given")
    return files


def create_pretraining_data(input_files: Sequence[str], vocab_file: str, output_dir: str,
                            options: PretrainingOptions = PretrainingOptions(), *,
                            lowercase: bool = True, num_shards: int = 1, compression: str | None = None,
                            num_workers: int | None = None, overwrite: bool = False,
                            show_progress: bool = True) -> dict:
    """Text files (one sentence per line, blank line between documents) -> sharded TFRecords.

    Writes `output_dir` atomically (built in a temporary sibling directory, then renamed) with
    `num_shards` files of tf.train.Examples in google-research/bert's feature names, plus
    `metadata.json`. Returns the metadata dict (counts, options, files)."""
    from bert_tf.data import documents as documents_lib
    from bert_tf.data import tfrecords, word_segmentation

    options.validate()
    paths = expand_input_files(input_files)
    if num_workers is None:
        num_workers = min(len(paths), os.cpu_count() or 1)
    tfrecords.check_output_dir(output_dir, overwrite)
    vocab = documents_lib.read_vocab(vocab_file)
    segmenter = word_segmentation.create_segmenter(options.word_segmenter)
    to_pieces = None

    # Tokenization (and word segmentation, once per line) runs here, tokenization
    # in-graph and batched (TensorFlow threads use the cores); the pure-Python pairing and masking
    # below is what runs in parallel processes.
    bar = _progress_bar(show_progress, total=len(paths), unit="file", desc="tokenize")
    documents_per_file = []
    for path in paths:
        text_documents = documents_lib.read_documents(path)
        word_segmentation.check_word_segmenter(text_documents, options.word_segmenter,
                                               options.whole_word_mask, path)
        if to_pieces is None:  # built after the first file passed its checks (it takes seconds)
            to_pieces = documents_lib.wordpiece_fn(vocab_file, lowercase=lowercase,
                                                   with_offsets=segmenter is not None)
        documents_per_file.append(
            documents_lib.tokenize_documents(text_documents, to_pieces, segmenter=segmenter))
        bar.update(1)
    bar.close()

    bar = _progress_bar(show_progress, total=len(paths), unit="file", desc="instances")
    instances = create_instances_for_files(documents_per_file, list(vocab), options,
                                           num_workers=num_workers, progress=lambda n: bar.update(1))
    bar.close()
    if not instances:
        raise PretrainingDataError(f"the input files {paths} hold no text: no instance was made")
    return tfrecords.write_instances(
        instances, vocab, output_dir, max_seq_length=options.max_seq_length,
        max_predictions_per_seq=options.max_predictions_per_seq, num_shards=num_shards,
        compression=compression, overwrite=overwrite, show_progress=show_progress,
        metadata={"options": dataclasses.asdict(options), "input_files": paths,
                  "vocab_file": fileio.abspath(vocab_file), "lowercase": lowercase})


def _progress_bar(enabled: bool, **kwargs):
    import tqdm

    return tqdm.tqdm(disable=not enabled, **kwargs)
