"""BERT's text normalization and word splitting, as TensorFlow graph ops.

This reproduces what BERT's `BasicTokenizer` (and Hugging Face's `BertNormalizer` +
`BertPreTokenizer`) do to text before WordPiece, with in-graph ops only:

1. Invalid UTF-8 is replaced by U+FFFD (so every later op sees valid text), and U+FFFD, U+0000 and
   every other control/format/private-use character (Unicode category C*, except \\t \\n \\r which
   count as whitespace) is *dropped* — it does not split a word: "soft\\u00adhyphen" is one word.
2. Words are split on whitespace (Unicode White_Space), every punctuation character (ASCII
   non-alphanumeric symbols plus Unicode P*) becomes its own word, and so does every CJK ideograph
   (the exact code-point blocks of BERT's `_is_chinese_char`; not kana, not Hangul).
3. Uncased models then apply NFD, drop nonspacing marks (Mn: accents) and lowercase, character by
   character. This is canonical decomposition (NFD), *not* the compatibility mapping (NFKD) that
   tensorflow-text's FastBertNormalizer applies: "…" stays "…" and "½" stays "½", as in BERT.
   Cased models keep the text as is (no NFD), as Hugging Face's cased BERT does.

Splitting happens on the original string (with byte offsets into it) and normalization afterwards,
word by word, so every word keeps its exact span in the input. Characters whose NFD form is
punctuation (U+1FEF → "`", U+2260 → "=" + mark, U+226E/U+226F → "<"/">" + mark) are treated as
punctuation up front in uncased mode so that the result equals split-after-normalize.
"""

from __future__ import annotations

import tensorflow as tf
import tensorflow_text as tf_text

# Unicode White_Space, minus the C0/C1 controls in it (\v \f U+0085) which BERT drops instead.
WHITESPACE_CHARS = (r"\t\n\r \x{00A0}\x{1680}\x{2000}-\x{200A}\x{2028}\x{2029}\x{202F}\x{205F}"
                    r"\x{3000}")
# ASCII punctuation (BERT counts $ + < = > ^ ` | ~ too) and Unicode P*.
PUNCTUATION_CHARS = r"!-/:-@\[-\x60{-~\p{P}"
# Characters that are not punctuation themselves but whose NFD (minus marks) is.
NFD_PUNCTUATION_CHARS = r"\x{1FEF}\x{2260}\x{226E}\x{226F}"
# BERT's `_is_chinese_char` blocks: CJK Unified Ideographs (+ extensions A-E) and compatibility.
CJK_CHARS = (r"\x{4E00}-\x{9FFF}\x{3400}-\x{4DBF}\x{20000}-\x{2A6DF}\x{2A700}-\x{2B73F}"
             r"\x{2B740}-\x{2B81F}\x{2B820}-\x{2CEAF}\x{F900}-\x{FAFF}\x{2F800}-\x{2FA1F}")
# Dropped without splitting: NUL, the replacement character, and categories Cc Cf Co Cs.
DROPPED_CHARS_PATTERN = r"[\x{0000}\x{FFFD}\p{C}]"
NONSPACING_MARK_PATTERN = r"\p{Mn}"


def split_pattern(lowercase: bool) -> tuple[str, str]:
    """(delimiter regex, kept-delimiter regex) for `tf_text.regex_split_with_offsets`."""
    punctuation = PUNCTUATION_CHARS + (NFD_PUNCTUATION_CHARS if lowercase else "")
    kept = f"[{punctuation}{CJK_CHARS}]"
    return f"[{WHITESPACE_CHARS}]+|{kept}", kept


def to_valid_utf8(text: tf.Tensor) -> tf.Tensor:
    """Replaces invalid UTF-8 byte sequences by U+FFFD (which step 1 then drops), and NUL by
    U+0001: the regex splitter stops at NUL; both are dropped, and byte offsets stay the same."""
    text = tf.strings.unicode_transcode(text, input_encoding="UTF-8", output_encoding="UTF-8",
                                        errors="replace", replacement_char=0xFFFD)
    return tf.strings.regex_replace(text, r"\x00", "\x01")


def split_words_with_offsets(text: tf.Tensor, lowercase: bool):
    """Splits valid UTF-8 strings [batch] into raw words.

    Returns (words, starts, ends): RaggedTensors [batch, (words)]; starts/ends are byte offsets of
    each word in `text`. Words still contain the characters that `normalize_words` drops.
    """
    delimiter, kept = split_pattern(lowercase)
    return tf_text.regex_split_with_offsets(text, delimiter, kept)


def normalize_words(words: tf.Tensor, lowercase: bool) -> tf.Tensor:
    """Normalizes a string tensor of words elementwise (any shape): drop C*, then for uncased NFD,
    drop Mn, lowercase. A word can become empty (e.g. only control characters or accents)."""
    words = tf.strings.regex_replace(words, DROPPED_CHARS_PATTERN, "")
    if lowercase:
        words = tf_text.normalize_utf8(words, "NFD")
        words = tf.strings.regex_replace(words, NONSPACING_MARK_PATTERN, "")
        # ICU lowercases a word-final capital sigma to "ς"; BERT lowercases character by character
        # (Hugging Face's Rust normalizer: always "σ"), so map it before lowercasing.
        words = tf.strings.regex_replace(words, "Σ", "σ")
        words = tf.strings.lower(words, encoding="utf-8")
    return words
