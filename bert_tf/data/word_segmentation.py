"""Words for whole-word masking in text written without spaces (Chinese), as Chinese-BERT-wwm does.

BERT's tokenizer makes every CJK ideograph its own token, so the English rule of whole-word
masking (a word is a piece plus the "##" pieces after it) sees every Chinese character as a word
and masks exactly like token masking. Chinese-BERT-wwm (Cui et al. 2019; Hugging Face's
`run_mlm_wwm.py` with its `chinese_ref` positions) takes the words from a word segmenter instead:
every character of a segmented word after the first is marked as continuing that word, for
masking only -- the tokens stay single characters and the vocabulary does not change.

The rule here: a piece *continues the word before it* when it is the piece of a CJK ideograph
(BERT's `_is_chinese_char` blocks) and the character right before it in the sentence is a CJK
ideograph of the same segmented word. For a word of only Chinese characters that is Cui et al.'s
rule; a mixed word (卡拉OK) joins only its run of ideographs, since the other characters are
BERT words with their own "##" rule. Such a piece is a `WordContinuation`: a `str` equal to the
piece itself that only the masking code tells apart, so the static path (piece strings) and the
dynamic path (ids, see `bert_tf.data.masking.piece_ids`) group the same words.

`mark_word_continuations` does the marking for one sentence from the pieces' byte offsets (the
tokenizer's `tokenize_with_offsets`), so the pieces are exactly those of the sentence without a
segmenter. `check_word_segmenter` is the guard both pre-training data paths call: whole-word
masking of mostly-CJK text without a segmenter is an error, not a silent no-op.

Segmenters: "none" (no segmentation) and "jieba" (the registry package jieba==0.42.1, the `zh`
extra: its own default dictionary, precise mode, HMM on for words missing from the dictionary,
such as names; a private `jieba.Tokenizer`, so nothing depends on jieba's global state).
"""

from __future__ import annotations

import logging
import os
import re
from typing import Callable, Sequence

from bert_tf import fileio

WORD_SEGMENTERS = ("none", "jieba")

# BERT's `_is_chinese_char` blocks (the same as `bert_tf.text.normalization.CJK_CHARS`, kept here
# so this module and the pre-training workers that import it stay free of TensorFlow).
CJK_RANGES = ((0x4E00, 0x9FFF), (0x3400, 0x4DBF), (0x20000, 0x2A6DF), (0x2A700, 0x2B73F),
              (0x2B740, 0x2B81F), (0x2B820, 0x2CEAF), (0xF900, 0xFAFF), (0x2F800, 0x2FA1F))
_CJK = re.compile("[" + "".join(f"{chr(a)}-{chr(b)}" for a, b in CJK_RANGES) + "]")
_LETTER = re.compile(r"[^\W\d_]")  # a Unicode letter (CJK ideographs are letters, category Lo)

# Above this share of CJK ideographs among a corpus's letters, whole-word masking needs a segmenter.
MOSTLY_CJK = 0.5

INSTALL_HINT = "install the zh extra: pip install 'bert_tf[zh]' (jieba==0.42.1)"


class WordSegmenterError(ValueError):
    """A word segmenter that is unknown, not installed, or missing where the text needs one."""


class WordContinuation(str):
    """A piece that continues the segmented word of the piece before it (whole-word masking only).

    It is equal to, hashes like and looks up like the plain piece string; only
    `is_word_continuation` tells it apart."""

    __slots__ = ()

    def __repr__(self) -> str:
        return f"WordContinuation({str.__repr__(self)})"


def is_word_continuation(piece) -> bool:
    return isinstance(piece, WordContinuation)


def is_cjk(char: str) -> bool:
    """True for one CJK ideograph (a character BERT's tokenizer always splits off on its own)."""
    return _CJK.fullmatch(char) is not None


# ----------------------------------------------------------------------------------------------
# Segmenters: sentence -> words whose concatenation is the sentence.
# ----------------------------------------------------------------------------------------------

Segmenter = Callable[[str], list]


class JiebaSegmenter:
    """jieba 0.42.1, precise mode (`cut_all=False`), HMM on; deterministic for a given sentence.

    A private `jieba.Tokenizer` with the package's default dictionary, built once here (seconds).
    Its prefix-dictionary cache goes to bert_tf's cache directory, per jieba version, not to the
    shared temporary directory, where jieba would load any `jieba.cache` it finds (from another
    version or user) unchecked. jieba's logger, which prints "Building prefix dict ..." to stderr
    at DEBUG level, is set to WARNING."""

    HMM = True

    def __init__(self):
        try:
            import jieba
        except ImportError:
            raise WordSegmenterError(f"the word segmenter 'jieba' is not installed: {INSTALL_HINT}") \
                from None
        from bert_tf.data.fetch import cache_dir

        jieba.setLogLevel(logging.WARNING)
        self._tokenizer = jieba.Tokenizer()
        self._tokenizer.tmp_dir = os.path.join(cache_dir(), f"jieba-{jieba.__version__}")
        fileio.makedirs(self._tokenizer.tmp_dir, exist_ok=True)
        self._tokenizer.initialize()

    def __call__(self, sentence: str) -> list:
        words = self._tokenizer.lcut(sentence, cut_all=False, HMM=self.HMM)
        if "".join(words) != sentence:  # jieba keeps every character; the marking relies on it
            raise WordSegmenterError(f"jieba changed the characters of the sentence {sentence!r}")
        return words


def create_segmenter(name: str | None) -> Segmenter | None:
    """The segmenter called `name` (one of WORD_SEGMENTERS); None for "none"."""
    if name in (None, "none"):
        return None
    if name == "jieba":
        return JiebaSegmenter()
    raise WordSegmenterError(f"unknown word segmenter {name!r}: expected one of {list(WORD_SEGMENTERS)}")


def validate_segmenter_option(name: str | None, whole_word_mask: bool) -> None:
    """A known name, and a segmenter only together with whole-word masking (it changes nothing else)."""
    if name not in (None,) + WORD_SEGMENTERS:
        raise WordSegmenterError(f"unknown word segmenter {name!r}: expected one of {list(WORD_SEGMENTERS)}")
    if name not in (None, "none") and not whole_word_mask:
        raise WordSegmenterError(f"word segmenter {name!r} is used only for whole-word masking: "
                                 "also pass --whole-word-mask (whole_word_mask=True), or drop it")


# ----------------------------------------------------------------------------------------------
# Marking the pieces of one sentence.
# ----------------------------------------------------------------------------------------------

def continuing_byte_offsets(words: Sequence[str]) -> set:
    """UTF-8 byte offsets (into the joined words) of the CJK ideographs that continue their word:
    not a word's first character, and the character before them in the word is an ideograph."""
    offsets, position = set(), 0
    for word in words:
        for j, char in enumerate(word):
            if j and is_cjk(char) and is_cjk(word[j - 1]):
                offsets.add(position)
            position += len(char.encode("utf-8"))
    return offsets


def mark_word_continuations(pieces: Sequence[str], piece_starts: Sequence[int],
                            continuing: set) -> list:
    """The pieces of one sentence, those that continue a segmented word as `WordContinuation`.

    `piece_starts`: each piece's UTF-8 byte offset in the sentence (the tokenizer's
    `start_offsets`); `continuing`: `continuing_byte_offsets` of the sentence's segmentation. A CJK
    ideograph is always its own BERT word of one piece (the character, or [UNK]), so the piece
    starting at a continuing ideograph's offset is that ideograph's piece."""
    if len(pieces) != len(piece_starts):
        raise ValueError(f"{len(pieces)} pieces but {len(piece_starts)} offsets")
    return [WordContinuation(p) if start in continuing else p for p, start in zip(pieces, piece_starts)]


# ----------------------------------------------------------------------------------------------
# The guard: mostly-CJK text with whole-word masking needs a segmenter.
# ----------------------------------------------------------------------------------------------

def cjk_share(sentences: Sequence[str]) -> float:
    """The share of CJK ideographs among the letters of `sentences` (0 when there are none)."""
    letters = cjk = 0
    for sentence in sentences:
        letters += len(_LETTER.findall(sentence))
        cjk += len(_CJK.findall(sentence))
    return cjk / letters if letters else 0.0


def check_word_segmenter(documents: Sequence[Sequence[str]], segmenter: str | None,
                         whole_word_mask: bool, source: str) -> None:
    """Raises when whole-word masking would see no words: the text (`source` names it) is mostly
    CJK ideographs (> MOSTLY_CJK of its letters), which BERT tokenizes one character at a time,
    and no word segmenter is given."""
    if not whole_word_mask or segmenter not in (None, "none"):
        return
    share = cjk_share([s for d in documents for s in d])
    if share > MOSTLY_CJK:
        raise WordSegmenterError(
            f"{source}: {share:.0%} of its letters are CJK ideographs, which BERT tokenizes one "
            "character at a time, so whole-word masking without a word segmenter would mask single "
            "characters: pass --word-segmenter jieba (word_segmenter='jieba' in Python), which "
            "needs the zh extra: pip install 'bert_tf[zh]'")
