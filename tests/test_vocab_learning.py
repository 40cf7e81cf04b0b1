"""The vocabulary learner's coverage rules (every character above the floor, whole-word tokens for
CJK, `c` and `##c` for scripts that form words), exact size, its [UNK] report against the real
tokenizer, and one clear error or warning for each bad input."""

import collections
import random
import unicodedata

import pytest
import tensorflow as tf

from bert_tf import cli
from bert_tf.text import BertTokenizer, read_vocabulary
from bert_tf.text.vocab_learning import (VocabularyLearningError, _learn_pieces, learn_vocabulary,
                                         learn_vocabulary_file)

# Chinese, Japanese (kana + kanji), Korean, Thai, English, German accents, punctuation.
SENTENCES = [
    "我们今天去北京看电影，电影很好看。", "这个酒店的房间很干净，服务也不错！", "我喜欢在北京吃饭。",
    "今日は東京で映画を見ました。", "ありがとうございます、とても楽しかったです。",
    "오늘은 서울에서 영화를 봤습니다.", "감사합니다 정말 재미있었어요.",
    "วันนี้ฉันไปดูหนังที่กรุงเทพ", "ขอบคุณมากครับ",
    "The hotel room was clean and the service was good.", "We watched a movie in Beijing today.",
    "Über den Wolken muß die Freiheit wohl grenzenlos sein.",
]


def _is_cjk(char):
    return unicodedata.name(char, "").startswith(("CJK UNIFIED", "CJK COMPATIBILITY IDEOGRAPH"))


def _corpus(repeat=3, seed=0):
    lines = SENTENCES * repeat
    random.Random(seed).shuffle(lines)
    return lines


def _tokenize_counts(vocab, lines, lowercase=True):
    tokenizer = BertTokenizer(vocab, lowercase=lowercase, sequence_length=512)
    ids = tokenizer.tokenize(tf.constant(lines)).flat_values.numpy()
    return ids.size, int((ids == tokenizer.unk_id).sum())


def test_learned_pieces_follow_the_most_frequent_pair():
    # low x5, lower x2, newest x6, widest x3: "##e ##s" and "##s ##t" tie at 9 (the smaller pair
    # wins), then "##es ##t"; "##o ##w" and "l ##o" tie at 7.
    words = [(["l", "##o", "##w"], 5), (["l", "##o", "##w", "##e", "##r"], 2),
             (["n", "##e", "##w", "##e", "##s", "##t"], 6), (["w", "##i", "##d", "##e", "##s", "##t"], 3)]
    assert _learn_pieces(words, 4, 2, set()) == ["##es", "##est", "##ow", "low"]
    # min_count stops the merges: only pairs seen 7+ times.
    assert _learn_pieces(words, 10, 7, set()) == ["##es", "##est", "##ow", "low"]
    # A merge that spells an existing token adds nothing new.
    assert _learn_pieces(words, 4, 2, {"##es"}) == ["##est", "##ow", "low", "##ew"]


def test_every_character_is_covered_with_the_right_forms():
    lines = _corpus()
    report = learn_vocabulary(lines, 300)
    vocab = report.tokens
    assert len(vocab) == 300 and report.size == 300 and not report.warnings
    assert vocab[:5] == ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    normalized = [unicodedata.normalize("NFD", s).lower() for s in lines]
    chars = {c for s in normalized for c in s if not c.isspace() and unicodedata.category(c) != "Mn"}
    for c in chars:
        assert c in vocab, c
        if _is_cjk(c) or unicodedata.category(c).startswith("P"):
            assert "##" + c not in vocab, c  # always a word of its own: whole-word form only
        else:
            assert "##" + c in vocab, c  # kana, Hangul, Thai, Latin: both forms
    assert report.cjk_characters == sum(map(_is_cjk, chars))
    assert report.characters_by_script["HANGUL"] == len({c for c in chars if "HANGUL" in
                                                          unicodedata.name(c)})
    # The report's numbers are the real tokenizer's on the same corpus.
    assert (report.corpus_tokens, report.unk_tokens) == _tokenize_counts(vocab, lines)
    assert report.unk_tokens == 0 and report.unk_rate == 0.0


def test_cased_unused_and_order_independence():
    lines = _corpus()
    cased = learn_vocabulary(lines, 300, lowercase=False, num_unused=4)
    assert cased.tokens[5:9] == ["[unused0]", "[unused1]", "[unused2]", "[unused3]"]
    assert "T" in cased.tokens and "Ü" in cased.tokens and "##ß" in cased.tokens
    assert (cased.corpus_tokens, cased.unk_tokens) == _tokenize_counts(cased.tokens, lines, False)
    uncased = learn_vocabulary(lines, 300)
    assert "T" not in uncased.tokens and "u" in uncased.tokens and "Ü" not in uncased.tokens
    # Learning depends on the counts only, not on line order.
    assert learn_vocabulary(_corpus(seed=1), 300).tokens == uncased.tokens


def test_rare_characters_and_the_unk_warning():
    lines = _corpus() + ["罕见字"]  # three characters seen once
    # Characters seen once come after every piece seen twice: none at a size the pieces fill ...
    assert not {"罕", "见", "字"} & set(learn_vocabulary(lines, 300).tokens)
    # ... and all of them when the pieces run out first (the corpus is too small for 400).
    report = learn_vocabulary(lines, 400)
    assert {"罕", "见", "字"} <= set(report.tokens) and len(report.tokens) < 400
    assert any("too small for --size 400" in w for w in report.warnings)
    # A size too small for the alphabet: the most frequent characters stay, the rest are [UNK],
    # and the rate is reported and warned about.
    small = learn_vocabulary(lines, 60)
    assert len(small.tokens) == 60
    assert any("no room for" in w for w in small.warnings)
    assert small.unk_rate > 0.005 and any("[UNK]" in w for w in small.warnings)
    assert (small.corpus_tokens, small.unk_tokens) == _tokenize_counts(small.tokens, lines)


def _run_cli(argv, capsys):
    status = cli.main(argv)
    out, err = capsys.readouterr()
    return status, out, err


def test_cli_prints_the_report_and_warns_on_a_small_corpus(tmp_path, capsys):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(_corpus()) + "\n", encoding="utf-8")
    status, out, err = _run_cli(["vocab", "--input", str(corpus), "--size", "5000",
                                 "--output", str(tmp_path / "v.txt")], capsys)
    assert status == 0
    size = len(read_vocabulary(str(tmp_path / "v.txt")))
    assert size < 5000 and f"wrote {size} tokens" in out
    assert "CJK" in out and "[UNK] rate" in out
    assert "too small for --size 5000" in err and f"has {size} tokens" in err


def test_cli_bad_inputs_exit_2_with_one_clear_error(tmp_path, capsys):
    gbk = tmp_path / "gbk.txt"
    gbk.write_bytes("第一行\n".encode("utf-8") + "这个酒店的房间很干净，服务也不错。\n".encode("gb18030"))
    status, _, err = _run_cli(["vocab", "--input", str(gbk), "--size", "100",
                               "--output", str(tmp_path / "v.txt")], capsys)
    assert status == 2 and err.count("\n") == 1
    assert f"{gbk}: line 2: not UTF-8" in err and "decodes as GB18030" in err

    empty = tmp_path / "empty.txt"
    empty.write_text("\n   \n\u200b\n", encoding="utf-8")  # blank lines and a format character
    status, _, err = _run_cli(["vocab", "--input", str(empty), "--size", "100",
                               "--output", str(tmp_path / "v.txt")], capsys)
    assert status == 2 and f"{empty}: the corpus contains no words" in err

    ok = tmp_path / "ok.txt"
    ok.write_text("hello world\n", encoding="utf-8")
    status, _, err = _run_cli(["vocab", "--input", str(ok), "--size", "7", "--unused", "2",
                               "--output", str(tmp_path / "v.txt")], capsys)
    assert status == 2 and "leaves no room" in err and "7 special/reserved tokens" in err
    assert not (tmp_path / "v.txt").exists()  # nothing half written


def test_undecodable_line_without_a_likely_encoding(tmp_path):
    bad = tmp_path / "bad.bin"
    bad.write_bytes(b"fine\n\x80\x81\x82\xff\n")
    with pytest.raises(VocabularyLearningError, match="line 2: not UTF-8") as error:
        learn_vocabulary_file([str(bad)], str(tmp_path / "v.txt"), 100)
    assert "decodes as" not in str(error.value)


@pytest.mark.slow
def test_real_chinese_text_coverage(tmp_path):
    from bert_tf.data import datasets
    path = datasets.write_split("chinese_text", "train", str(tmp_path / "train.txt"))
    with open(path, encoding="utf-8") as f:
        lines = [line.strip() for _, line in zip(range(12000), f) if line.strip()]
    report = learn_vocabulary(lines, 3600)
    assert abs(report.size - 3600) <= 0.05 * 3600 and not report.warnings
    chars = collections.Counter(c for line in lines for c in line if _is_cjk(c))
    vocab = set(report.tokens)
    assert all(c in vocab for c, n in chars.items() if n >= 2)
    assert report.cjk_characters >= sum(1 for n in chars.values() if n >= 2)
    assert report.unk_rate < 0.005
    # Held out: the test split's [UNK] rate with the real tokenizer stays low too.
    test_path = datasets.write_split("chinese_text", "test", str(tmp_path / "test.txt"))
    with open(test_path, encoding="utf-8") as f:
        test_lines = [line.strip() for _, line in zip(range(2000), f) if line.strip()]
    total, unk = _tokenize_counts(report.tokens, test_lines)
    assert unk / total < 0.01
