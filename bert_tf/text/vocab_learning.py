"""Learning a WordPiece vocabulary for a new corpus or language.

Words are produced by the tokenizer's own in-graph normalization and splitting (so the learned
pieces are exactly what `BertTokenizer` will look up) and counted in one streaming pass. The
vocabulary is then built in layers, the way google-research/bert's multilingual and Chinese
vocabularies are laid out:

1. Special tokens ([PAD] [UNK] [CLS] [SEP] [MASK]), then optional reserved `[unused0]`... slots.
2. The alphabet: every character seen at least `min_char_count` times, most frequent first. A
   character that BERT's basic tokenizer always splits off as a word of its own (CJK ideographs,
   punctuation) only ever needs its whole-word token `c`; every other character (Latin, kana,
   Hangul, Thai, ...) gets both `c` and `##c`, so that every word spelled with alphabet characters
   has a WordPiece segmentation and never becomes [UNK].
3. Word pieces, learned bottom-up: starting from characters (`h ##e ##l ##l ##o`), the most
   frequent adjacent pair of pieces is merged into a new WordPiece token (`he`, `##ll`), until the
   vocabulary has `vocab_size` tokens or no pair occurs `min_count` times. Every intermediate piece
   stays in the vocabulary, so the tokenizer's greedy longest-match-first segmentation (which need
   not follow the merge order) still always succeeds.
4. If the corpus runs out of such pieces first (a corpus too small for the size), the characters
   below `min_char_count` fill the remaining room (most frequent first): they cannot hurt and each
   saves the words it occurs in from [UNK]. A vocabulary still short of the size is a warning.

The size is therefore exact unless the corpus is too small. Unlike tensorflow-text's top-down
learner (a binary search over a count threshold, in pure Python per word), the alphabet has no cap
(a Chinese vocabulary is mostly single characters) and merges only revisit the words that contain
the merged pair.

The result comes with a `VocabularyReport`: size, whole-character tokens by script, and the [UNK]
rate of the learned vocabulary on the corpus it was learned from, measured with the same WordPiece
op and word-length limit as `BertTokenizer`.
"""

from __future__ import annotations

import collections
import dataclasses
import heapq
import time
import unicodedata

import numpy as np
import tensorflow as tf
import tensorflow_text as tf_text

from bert_tf import fileio
from bert_tf.text import normalization
from bert_tf.text.vocabulary import SpecialTokens, check_vocabulary, write_vocabulary

SUFFIX = "##"
# Words longer than this (in characters, after normalization) are one [UNK] in `BertTokenizer`
# (its default max_chars_per_word); they are left out of learning.
MAX_CHARS_PER_WORD = 100
# Above this [UNK] rate on its own corpus a learned vocabulary gets a warning. A vocabulary that
# holds every character above the floor only misses characters rarer than the floor, which is far
# below this on any real corpus; 0.5% is about one [UNK] in every two 128-token sequences, where
# masked-LM starts learning to predict [UNK] (the failure of a character-capped vocabulary).
UNK_RATE_WARNING = 0.005


class VocabularyLearningError(ValueError):
    """The corpus or the options cannot produce a vocabulary."""


@dataclasses.dataclass(frozen=True)
class VocabularyReport:
    """What `learn_vocabulary` produced, and how well it covers the corpus it learned from."""
    tokens: list                # the vocabulary, id = position
    requested_size: int
    characters_by_script: dict  # whole-character tokens per script ("CJK", "LATIN", ...)
    corpus_words: int           # word occurrences counted (after normalization)
    distinct_words: int
    corpus_tokens: int          # WordPiece tokens of the corpus with this vocabulary
    unk_tokens: int             # of which [UNK]
    count_seconds: float        # counting words (reading + in-graph normalization)
    learn_seconds: float        # alphabet, merges and the [UNK] measurement
    warnings: tuple = ()

    @property
    def size(self) -> int:
        return len(self.tokens)

    @property
    def unk_rate(self) -> float:
        return self.unk_tokens / self.corpus_tokens if self.corpus_tokens else 0.0

    @property
    def cjk_characters(self) -> int:
        return self.characters_by_script.get("CJK", 0)

    def summary_lines(self) -> list:
        scripts = ", ".join(f"{name} {n}" for name, n in
                            sorted(self.characters_by_script.items(), key=lambda kv: -kv[1]))
        return [f"size: {self.size} tokens (requested {self.requested_size})",
                f"whole-character tokens: {sum(self.characters_by_script.values())} ({scripts})",
                f"[UNK] rate on the learning corpus: {self.unk_rate:.4%} "
                f"({self.unk_tokens} of {self.corpus_tokens} tokens; {self.corpus_words} words, "
                f"{self.distinct_words} distinct)",
                f"time: {self.count_seconds:.1f} s counting, {self.learn_seconds:.1f} s learning"]


# ---------------------------------------------------------------------------------- counting
@tf.function(input_signature=[tf.TensorSpec([None], tf.string), tf.TensorSpec([], tf.bool)])
def _normalized_words(text, lowercase):
    text = normalization.to_valid_utf8(text)

    def words(lower: bool):
        raw, _, _ = normalization.split_words_with_offsets(text, lower)
        return normalization.normalize_words(raw.flat_values, lower)

    flat = tf.cond(lowercase, lambda: words(True), lambda: words(False))
    return tf.boolean_mask(flat, tf.strings.length(flat) > 0)


@tf.function(input_signature=[tf.TensorSpec([None], tf.string), tf.TensorSpec([], tf.bool)])
def _word_counts(text, lowercase):
    """text [batch] -> (normalized words [n], counts [n]) of the batch's distinct raw words.

    Normalization is word by word, so it runs once per distinct raw word (a batch of Chinese text
    has ~100x fewer distinct words than words); two raw words may normalize alike, and Python
    adds their counts."""
    text = normalization.to_valid_utf8(text)

    def counted(lower: bool):
        raw, _, _ = normalization.split_words_with_offsets(text, lower)
        distinct, _, counts = tf.unique_with_counts(raw.flat_values)
        words = normalization.normalize_words(distinct, lower)
        keep = tf.strings.length(words) > 0
        return tf.boolean_mask(words, keep), tf.boolean_mask(counts, keep)

    return tf.cond(lowercase, lambda: counted(True), lambda: counted(False))


def count_words(texts, lowercase: bool = True, batch_size: int = 4096) -> collections.Counter:
    """Normalized word counts of an iterable of strings (one document or sentence each), in one
    streaming pass of batches through the tokenizer's normalization."""
    counts = collections.Counter()
    batch = []

    def flush():
        if batch:
            words, n = _word_counts(tf.constant(batch), tf.constant(lowercase))
            for word, k in zip(words.numpy().tolist(), n.numpy().tolist()):
                counts[word] += k
            batch.clear()

    for text in texts:
        batch.append(text)
        if len(batch) >= batch_size:
            flush()
    flush()
    return collections.Counter({word.decode("utf-8"): n for word, n in counts.items()})


# ---------------------------------------------------------------------------------- alphabet
def reserved_tokens(special_tokens: SpecialTokens | None = None, num_unused: int = 0) -> list:
    if num_unused < 0:
        raise VocabularyLearningError(f"num_unused must be >= 0, got {num_unused}")
    special_tokens = special_tokens or SpecialTokens()
    return special_tokens.as_list() + [f"[unused{i}]" for i in range(num_unused)]


def own_word_characters(chars, lowercase: bool) -> set:
    """The characters among `chars` that the tokenizer's splitter always makes a word of their own
    (CJK ideographs, punctuation): asked of the splitter itself, so it cannot drift from it."""
    chars = sorted(chars)
    if not chars:
        return set()
    probes = tf.constant([f"a{c}a" for c in chars])
    words, _, _ = normalization.split_words_with_offsets(probes, lowercase)
    return {c for c, n in zip(chars, words.row_lengths().numpy()) if n == 3}


def character_script(char: str) -> str:
    """A coarse script name for reporting: CJK (BERT's `_is_chinese_char` blocks), punctuation &
    symbols, digits, else the first word of the Unicode name (LATIN, HIRAGANA, HANGUL, THAI...)."""
    name = unicodedata.name(char, "")
    if name.startswith(("CJK UNIFIED IDEOGRAPH", "CJK COMPATIBILITY IDEOGRAPH")):
        return "CJK"
    category = unicodedata.category(char)
    if category[0] in "PS":
        return "punctuation/symbol"
    if category[0] == "N":
        return "number"
    return name.split(" ")[0] if name else "other"


def _character_counts(counts):
    """(occurrences of each character, occurrences at a non-initial position of a word)."""
    total, inner = collections.Counter(), collections.Counter()
    for word, n in counts.items():
        for i, c in enumerate(word):
            total[c] += n
            if i:
                inner[c] += n
    return total, inner


def _character_tokens(char, own_word, inner_count) -> list:
    # A character that occurs inside a word on this corpus needs `##c` even if the splitter
    # usually isolates it (it cannot, after normalization, but the corpus is the truth).
    return [char] if own_word and not inner_count else [char, SUFFIX + char]


# ---------------------------------------------------------------------------------- merges
def _merge_word(symbols, pair, token):
    merged, i = [], 0
    while i < len(symbols):
        if i + 1 < len(symbols) and symbols[i] == pair[0] and symbols[i + 1] == pair[1]:
            merged.append(token)
            i += 2
        else:
            merged.append(symbols[i])
            i += 1
    return merged


def _learn_pieces(words, budget: int, min_count: int, vocab: set) -> list:
    """Bottom-up WordPiece merges over `words` ([(symbols list, count)], each of 2+ symbols).

    Pair counts are kept up to date incrementally: a merge only revisits the words that contain the
    merged pair (`where`), and a max-heap with lazy deletion (stale entries are re-pushed with their
    current count when popped) yields the most frequent pair; ties go to the smaller pair so the
    result is deterministic. Returns the new tokens in the order they were learned."""
    seqs = [symbols for symbols, _ in words]
    freqs = [n for _, n in words]
    pair_counts = collections.defaultdict(int)
    where = collections.defaultdict(set)
    for i, symbols in enumerate(seqs):
        for pair in zip(symbols, symbols[1:]):
            pair_counts[pair] += freqs[i]
            where[pair].add(i)
    heap = [(-n, pair) for pair, n in pair_counts.items() if n >= min_count]
    heapq.heapify(heap)
    new_tokens = []
    while heap and len(new_tokens) < budget:
        negative, pair = heapq.heappop(heap)
        n = pair_counts.get(pair, 0)
        if n != -negative:
            if n >= min_count:
                heapq.heappush(heap, (-n, pair))
            continue
        token = pair[0] + pair[1][len(SUFFIX):]  # the right piece is always a continuation
        if token not in vocab:
            vocab.add(token)
            new_tokens.append(token)
        changed = set()
        for i in where.pop(pair):
            symbols = seqs[i]
            merged = _merge_word(symbols, pair, token)
            if len(merged) == len(symbols):
                continue  # a stale entry: an earlier merge took this word's pair
            f = freqs[i]
            for old in zip(symbols, symbols[1:]):
                pair_counts[old] -= f
            for new in zip(merged, merged[1:]):
                pair_counts[new] += f
                # Only pairs with the new token can have grown; the others kept their `where`
                # entries (stale ones are skipped above) and their heap entries (lazy deletion).
                if new[0] == token or new[1] == token:
                    where[new].add(i)
                    changed.add(new)
            seqs[i] = merged
        if not pair_counts[pair]:  # every occurrence merged (a merge cannot re-form its own pair)
            del pair_counts[pair]
        for other in changed:
            if pair_counts[other] >= min_count:
                heapq.heappush(heap, (-pair_counts[other], other))
    return new_tokens


# ---------------------------------------------------------------------------------- coverage
def wordpiece_coverage(vocab, counts, max_chars_per_word: int = MAX_CHARS_PER_WORD,
                       unk_token: str = "[UNK]", batch_size: int = 100_000):
    """(tokens, [UNK] tokens) of the counted words under `vocab`, with the WordPiece op and the
    word-length rule `BertTokenizer` uses (a word it cannot spell, or a too-long one, is one
    [UNK])."""
    wordpiece = tf_text.FastWordpieceTokenizer(
        vocab=list(vocab), suffix_indicator=SUFFIX, max_bytes_per_word=4 * max_chars_per_word,
        token_out_type=tf.int32, unknown_token=unk_token, no_pretokenization=True)
    unk_id = list(vocab).index(unk_token)
    words = list(counts)
    total = unk = 0
    for start in range(0, len(words), batch_size):
        chunk = words[start:start + batch_size]
        n = np.array([counts[w] for w in chunk], dtype=np.int64)
        too_long = np.array([len(w) > max_chars_per_word for w in chunk])
        ids = wordpiece.tokenize(tf.constant(chunk))  # [words, (pieces)]
        pieces = ids.row_lengths().numpy()
        unks = tf.reduce_sum(tf.cast(ids == unk_id, tf.int64), axis=1).numpy()
        pieces = np.where(too_long, 1, pieces)
        unks = np.where(too_long, 1, unks)
        total += int((pieces * n).sum())
        unk += int((unks * n).sum())
    return total, unk


# ---------------------------------------------------------------------------------- learning
def learn_vocabulary(texts, vocab_size: int, lowercase: bool = True, num_unused: int = 0,
                     special_tokens: SpecialTokens | None = None, min_count: int = 2,
                     min_char_count: int = 2, source: str = "the corpus") -> VocabularyReport:
    """Learns a WordPiece vocabulary of `vocab_size` tokens (fewer, with a warning, when the corpus
    is too small) from an iterable of strings; see the module docstring for the layout.

    min_count: fewest occurrences of a learned multi-character piece.
    min_char_count: fewest occurrences of a character to be in the alphabet before any piece.
    source: what the texts are, for error messages (e.g. the file names).
    """
    special_tokens = special_tokens or SpecialTokens()
    reserved = reserved_tokens(special_tokens, num_unused)
    if vocab_size <= len(reserved):
        raise VocabularyLearningError(f"vocab_size={vocab_size} leaves no room for word-pieces after "
                                      f"{len(reserved)} special/reserved tokens")
    for name, value in (("min_count", min_count), ("min_char_count", min_char_count)):
        if value < 1:
            raise VocabularyLearningError(f"{name} must be >= 1, got {value}")
    start = time.perf_counter()
    counts = count_words(texts, lowercase)
    if not counts:
        raise VocabularyLearningError(f"{source}: the corpus contains no words")
    count_seconds = time.perf_counter() - start
    start = time.perf_counter()
    warnings = []
    learnable = {w: n for w, n in counts.items() if len(w) <= MAX_CHARS_PER_WORD}
    char_total, char_inner = _character_counts(learnable)
    own_word = own_word_characters(char_total, lowercase)
    # Most frequent first; ties by code point so the result does not depend on corpus order.
    by_frequency = sorted(char_total, key=lambda c: (-char_total[c], c))
    vocab = list(reserved)
    taken = set(vocab)
    budget = vocab_size - len(vocab)
    alphabet = []
    rare = []
    for c in by_frequency:
        if char_total[c] < min_char_count:
            rare.append(c)
            continue
        tokens = [t for t in _character_tokens(c, c in own_word, char_inner[c]) if t not in taken]
        if len(tokens) > budget:
            left_out = [d for d in by_frequency[by_frequency.index(c):]
                        if char_total[d] >= min_char_count]
            warnings.append(
                f"--size {vocab_size} has no room for {len(left_out)} of the characters seen at "
                f"least {min_char_count} times (each is [UNK]); a larger size covers them")
            break
        alphabet.append(c)
        vocab += tokens
        taken.update(tokens)
        budget -= len(tokens)
    # Merges only within words whose every character is in the alphabet: a word with any other
    # character is [UNK] whatever pieces it has.
    in_alphabet = set(alphabet)
    words = [([w[0]] + [SUFFIX + c for c in w[1:]], n) for w, n in learnable.items()
             if len(w) > 1 and all(c in in_alphabet for c in w)]
    pieces = _learn_pieces(words, budget, min_count, taken)
    vocab += pieces
    budget -= len(pieces)
    for c in rare:
        tokens = [t for t in _character_tokens(c, c in own_word, char_inner[c]) if t not in taken]
        if len(tokens) > budget:
            break
        alphabet.append(c)
        vocab += tokens
        taken.update(tokens)
        budget -= len(tokens)
    if budget > 0:
        warnings.append(
            f"the corpus is too small for --size {vocab_size}: it has no more word pieces seen at "
            f"least {min_count} times, so the vocabulary has {len(vocab)} tokens "
            f"({len(vocab) / vocab_size:.1%} of the size); use more text or a smaller size")
    check_vocabulary(vocab, source="learned vocabulary", special_tokens=special_tokens)
    corpus_tokens, unk_tokens = wordpiece_coverage(vocab, counts, unk_token=special_tokens.unk)
    if corpus_tokens and unk_tokens / corpus_tokens > UNK_RATE_WARNING:
        warnings.append(
            f"{unk_tokens / corpus_tokens:.2%} of the corpus's own tokens are [UNK] (above "
            f"{UNK_RATE_WARNING:.1%}): lower --min-char-count or raise --size so that more "
            f"characters are in the vocabulary")
    characters_by_script = collections.Counter(character_script(c) for c in alphabet)
    return VocabularyReport(
        tokens=vocab, requested_size=vocab_size, characters_by_script=dict(characters_by_script),
        corpus_words=sum(counts.values()), distinct_words=len(counts), corpus_tokens=corpus_tokens,
        unk_tokens=unk_tokens, count_seconds=count_seconds,
        learn_seconds=time.perf_counter() - start, warnings=tuple(warnings))


# ---------------------------------------------------------------------------------- files
# Encodings a non-UTF-8 corpus is most likely in, named in the error when a bad line decodes in one.
_LIKELY_ENCODINGS = ("gb18030", "big5", "shift_jis", "euc_kr")


def _guess_encoding(raw: bytes) -> str | None:
    """The first likely legacy encoding that decodes `raw` into mostly letters (not symbols)."""
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        return "UTF-16"
    for encoding in _LIKELY_ENCODINGS:
        try:
            text = raw.decode(encoding)
        except UnicodeDecodeError:
            continue
        non_ascii = [c for c in text if ord(c) > 127]
        letters = [c for c in non_ascii if unicodedata.category(c).startswith(("L", "P"))]
        if non_ascii and len(letters) >= 0.9 * len(non_ascii):
            return encoding.upper().replace("_", "-")
    return None


def read_text_lines(paths):
    """Yields the non-empty lines of UTF-8 text files; a decoding error names file and line, and
    the legacy encoding the line decodes in, if one fits."""
    for path in paths:
        try:
            f = fileio.open(path, "rb")  # decoded line by line so an error names the right line
        except OSError as e:
            raise VocabularyLearningError(f"{path}: cannot read ({e.strerror})") from None
        with f:
            for line_number, raw in enumerate(f, start=1):
                try:
                    line = raw.decode("utf-8").strip()
                except UnicodeDecodeError as e:
                    guess = _guess_encoding(raw)
                    hint = (f"; it decodes as {guess}: convert the file to UTF-8 first (e.g. "
                            f"iconv -f {guess} -t UTF-8)" if guess else "")
                    raise VocabularyLearningError(
                        f"{path}: line {line_number}: not UTF-8 text ({e.reason}){hint}") from None
                if line:
                    yield line


def learn_vocabulary_file(input_paths, output_path: str, vocab_size: int,
                          **kwargs) -> VocabularyReport:
    """Learns from text files (one sentence or document per line) and writes vocab.txt atomically."""
    if not input_paths:
        raise VocabularyLearningError("no input files given")
    report = learn_vocabulary(read_text_lines(input_paths), vocab_size,
                              source=", ".join(map(str, input_paths)), **kwargs)
    write_vocabulary(report.tokens, output_path)
    return report
