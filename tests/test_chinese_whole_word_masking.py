"""Chinese whole-word masking (Chinese-BERT-wwm): words from the jieba segmenter, tokens that stay
characters, the same rules in the static records and the dynamic pipeline (no word partly masked,
80/10/10, counts), the same words in both, and one clear error for each bad input."""

import collections
import os
import random
import re
import sys

import numpy as np
import pytest
import tensorflow as tf

from bert_tf.data import datasets, documents, masking, pretraining, tfrecords, word_segmentation
from bert_tf.training.pretraining import PretrainingConfig
from bert_tf.training.trainer import TrainingError

sys.path.insert(0, os.path.dirname(__file__))
from test_pretraining_data import assert_80_10_10, check_batches  # noqa: E402

# Sentences whose jieba segmentation the tests rely on (checked in the first test).
KNOWN_SENTENCES = {
    "中华人民共和国成立于一九四九年。": ["中华人民共和国", "成立", "于", "一九四九年", "。"],
    "我爱北京天安门。": ["我", "爱", "北京", "天安门", "。"],
    "北京是中华人民共和国的首都。": ["北京", "是", "中华人民共和国", "的", "首都", "。"],
    "我们在北京过年。": ["我们", "在", "北京", "过年", "。"],
    "我买了一件T恤，hello world。": ["我", "买", "了", "一件", "T恤", "，", "hello", " ", "world",
                                    "。"],
}
CHINA = "中华人民共和国"


def write_vocab(path, texts):
    """google's Chinese vocabulary layout ([PAD], [unused1-99], [UNK]=100, [CLS]=101, [SEP]=102,
    [MASK]=103), then every character of `texts` (lowercased) and "##" + each non-CJK one."""
    chars = sorted({c for t in texts for c in t.lower() if not c.isspace()})
    words = (["[PAD]"] + [f"[unused{i}]" for i in range(1, 100)] + ["[UNK]", "[CLS]", "[SEP]", "[MASK]"]
             + chars + ["##" + c for c in chars if not word_segmentation.is_cjk(c)])
    path.write_text("\n".join(words) + "\n", encoding="utf-8")
    return str(path), words


@pytest.fixture(scope="module")
def zh(tmp_path_factory):
    """Real Chinese text (People's Daily paragraphs of the chinese_text train split, ~60k
    characters), its character vocabulary, and its documents tokenized with jieba's words marked."""
    root = tmp_path_factory.mktemp("zh")
    docs, size = [], 0
    for document in datasets.chinese_documents("train"):
        docs.append(document)
        size += sum(len(s) for s in document)
        if size > 60_000:
            break
    corpus = str(root / "corpus.txt")
    datasets.write_documents(corpus, docs)
    vocab_file, words = write_vocab(root / "vocab.txt", [s for d in docs for s in d] + list(KNOWN_SENTENCES))
    segmenter = word_segmentation.JiebaSegmenter()
    marked = documents.tokenize_documents(
        documents.read_documents(corpus), documents.wordpiece_fn(vocab_file, with_offsets=True),
        segmenter=segmenter)
    return corpus, vocab_file, words, segmenter, marked


def groups_with_marks(tokens):
    """The whole-word candidates of a token list with marks (the static rule)."""
    return pretraining.candidate_words(tokens, whole_word_mask=True)


def test_words_come_from_the_segmenter_and_tokens_stay_characters(zh):
    corpus, vocab_file, words, segmenter, marked = zh
    for sentence, expected in KNOWN_SENTENCES.items():
        assert segmenter(sentence) == expected
    to_pieces = documents.wordpiece_fn(vocab_file, with_offsets=True)
    sentences = list(KNOWN_SENTENCES)
    tokenized = documents.tokenize_documents([sentences], to_pieces, segmenter=segmenter)[0]
    words_of = [["".join(tokens[i].removeprefix("##") for i in group)
                 for group in groups_with_marks(tokens)] for tokens in tokenized]
    assert words_of[0] == [CHINA, "成立", "于", "一九四九年", "。"]
    assert words_of[1] == ["我", "爱", "北京", "天安门", "。"]
    # A mixed word (T恤) joins only its ideographs, and English keeps BERT's words.
    assert words_of[4] == ["我", "买", "了", "一件", "t", "恤", "，", "hello", "world", "。"]

    # On real text: the pieces are exactly those without a segmenter (the vocabulary and the
    # tokens do not change), only CJK characters are marked, and many are (the average Chinese
    # word is about two characters long).
    plain = documents.tokenize_documents(documents.read_documents(corpus),
                                         documents.wordpiece_fn(vocab_file))
    assert marked == plain
    assert [[[str(p) for p in s] for s in d] for d in marked] == plain
    flat = [p for d in marked for s in d for p in s]
    continuing = [p for p in flat if word_segmentation.is_word_continuation(p)]
    assert all(word_segmentation.is_cjk(p) or p == "[UNK]" for p in continuing)
    assert 0.3 < len(continuing) / len(flat) < 0.6


def test_cjk_blocks_are_the_tokenizers():
    from bert_tf.text import normalization

    blocks = re.findall(r"\\x\{([0-9A-F]+)\}-\\x\{([0-9A-F]+)\}", normalization.CJK_CHARS)
    assert sorted((int(a, 16), int(b, 16)) for a, b in blocks) == sorted(word_segmentation.CJK_RANGES)


def check_masked_sequence(tokens, positions, masked_tokens, groups, max_predictions=20,
                          masked_lm_prob=0.15):
    """The rules on one masked sequence, given its original `tokens` and its words (`groups`):
    positions sorted, no [CLS]/[SEP], at most the budget, no word partly masked. Returns (the
    groups it masked, 80/10/10 counts, whether the budget was used up)."""
    assert list(positions) == sorted(set(positions))
    assert all(tokens[p] not in ("[CLS]", "[SEP]") for p in positions)
    budget = pretraining.num_to_predict(len(tokens), masked_lm_prob, max_predictions)
    assert 1 <= len(positions) <= budget
    chosen = set(positions)
    masked_groups = []
    for group in groups:
        inside = [p in chosen for p in group]
        assert all(inside) or not any(inside), f"part of a word masked: {tokens}"
        if inside[0]:
            masked_groups.append(group)
    kinds = collections.Counter(
        "mask" if masked_tokens[p] == "[MASK]" else "keep" if masked_tokens[p] == tokens[p]
        else "random" for p in positions)
    return masked_groups, kinds, len(positions) == budget


def test_static_masking_keeps_segmented_words_whole(zh):
    _, _, words, _, marked = zh
    options = pretraining.PretrainingOptions(dupe_factor=3, whole_word_mask=True,
                                             word_segmenter="jieba", random_seed=7)
    instances = pretraining.create_instances_for_files([marked], words, options)
    kinds, lengths = collections.Counter(), collections.Counter()
    predictions = tokens_total = full = 0
    for inst in instances:
        tokens = list(inst.tokens)
        for p, label in zip(inst.masked_lm_positions, inst.masked_lm_labels):
            tokens[p] = label  # the original token, mark included
        groups, k, is_full = check_masked_sequence(tokens, inst.masked_lm_positions, inst.tokens,
                                                   groups_with_marks(tokens))
        kinds += k
        lengths.update(len(g) for g in groups)
        predictions += len(inst.masked_lm_positions)
        tokens_total += len(tokens)
        full += is_full
    assert_80_10_10(kinds, predictions)
    assert full / len(instances) > 0.85  # a word that would overshoot rarely leaves one short
    assert abs(predictions / tokens_total - 0.15) < 0.01
    assert sum(n for size, n in lengths.items() if size > 1) > 0.5 * sum(lengths.values())
    assert max(lengths) >= 4


def test_dynamic_masker_agrees_with_static_words_and_rules(zh):
    """The pairs the pipeline makes (unmasked, ids with marks) go through `DynamicMasker`: its
    words (`group_words`) are the static rule's, and the masks follow the same rules."""
    _, _, words, _, marked = zh
    vocab = {w: i for i, w in enumerate(words)}
    rng = random.Random(3)
    pairs = []  # (tokens with marks, ids with marks)
    for document_index in range(len(marked)):
        for inst in pretraining.create_instances_from_document(marked, document_index, 128, 0.1, rng,
                                                               None):
            pairs.append((inst.tokens, masking.piece_ids(inst.tokens, vocab)))
    pairs = pairs * 3  # new masks for each copy, as on three passes
    masker = masking.DynamicMasker(words, 20, 0.15, whole_word_mask=True)

    # The same words: the static candidates are the dynamic items, except that a "##" piece right
    # after [SEP] starts its own word in the dynamic path (the documented difference).
    ids = tf.ragged.constant([p[1] for p in pairs], dtype=tf.int32)
    marks = ids.flat_values >= len(words)
    plain_ids = ids.with_flat_values(ids.flat_values % len(words))
    grouped = masking.group_words(plain_ids, masker.continuation, masker.special, marks)
    compared, dynamic_groups = 0, []
    for (tokens, _), row in zip(pairs, grouped.row_lengths(axis=2).to_list()):
        ends = np.cumsum(row)
        dynamic_groups.append([list(range(end - size, end)) for size, end in zip(row, ends)
                               if tokens[end - 1] not in ("[CLS]", "[SEP]")])
        if tokens[tokens.index("[SEP]") + 1].startswith("##"):
            continue
        assert dynamic_groups[-1] == groups_with_marks(tokens)
        compared += 1
    assert compared > 0.9 * len(pairs)

    kinds, predictions, full, multi = collections.Counter(), 0, 0, 0
    for start in range(0, len(pairs), 256):
        batch = pairs[start:start + 256]
        masked, positions, labels = masker(tf.ragged.constant([p[1] for p in batch], dtype=tf.int32),
                                           tf.constant([5, start], tf.int64))
        for (tokens, _), groups, out, pos, lab in zip(batch, dynamic_groups[start:start + 256],
                                                      masked.to_list(), positions.to_list(),
                                                      labels.to_list()):
            assert [vocab[tokens[p]] for p in pos] == lab
            groups, k, is_full = check_masked_sequence(tokens, pos, [words[t] for t in out], groups)
            kinds += k
            predictions += len(pos)
            full += is_full
            multi += sum(len(g) > 1 for g in groups)
    assert_80_10_10(kinds, predictions)
    assert full / len(pairs) > 0.85
    assert multi > predictions / 4


def known_word_corpus(path, count=60, seed=0):
    """Documents of 3-6 sentences drawn from KNOWN_SENTENCES."""
    rng = random.Random(seed)
    sentences = list(KNOWN_SENTENCES)[:4]
    docs = [[rng.choice(sentences) for _ in range(rng.randint(3, 6))] for _ in range(count)]
    datasets.write_documents(str(path), docs)
    return str(path)


def masked_occurrences(batches, vocab_words, word):
    """(whole, partial): occurrences of `word` (its characters in a row) masked whole / in part."""
    whole = partial = 0
    for batch in batches:
        for i in range(len(batch["input_ids"])):
            k = int(batch["masked_lm_weights"][i].sum())
            positions = batch["masked_lm_positions"][i][:k]
            original = batch["input_ids"][i].copy()
            original[positions] = batch["masked_lm_ids"][i][:k]
            text = [vocab_words[t] for t in original[:int(batch["attention_mask"][i].sum())]]
            chosen = set(positions.tolist())
            for start in range(len(text) - len(word) + 1):
                if "".join(text[start:start + len(word)]) == word:
                    inside = [p in chosen for p in range(start, start + len(word))]
                    whole += all(inside)
                    partial += any(inside) and not all(inside)
    return whole, partial


@pytest.mark.slow
def test_both_paths_mask_known_words_whole(zh, tmp_path):
    """Through the file APIs: 中华人民共和国 and 北京 are masked whole or not at all, in the static
    records and in the dynamic batches; without whole-word masking they are masked in part."""
    _, vocab_file, words, _, _ = zh
    corpus = known_word_corpus(tmp_path / "known.txt")
    options = pretraining.PretrainingOptions(max_seq_length=64, max_predictions_per_seq=10,
                                             dupe_factor=5, whole_word_mask=True,
                                             word_segmenter="jieba", random_seed=1)
    meta = pretraining.create_pretraining_data([corpus], vocab_file, str(tmp_path / "static"), options,
                                               show_progress=False)
    assert meta["options"]["word_segmenter"] == "jieba"
    static = [{k: v.numpy() for k, v in b.items()} for b in tfrecords.load_pretraining_dataset(
        str(tmp_path / "static" / "*.tfrecord"), 64, 64, 10, shuffle=False, repeat=False,
        drop_remainder=False)]
    dataset = masking.dynamic_masking_dataset([corpus], vocab_file, 64, 64, 10, whole_word_mask=True,
                                              word_segmenter="jieba", seed=2, repeat=False)
    dynamic = [{k: v.numpy() for k, v in b.items()} for b in dataset]
    for batches in (static, dynamic):
        check_batches(batches, words, whole_word_mask=True, max_predictions=10)
        for word in (CHINA, "北京", "天安门"):
            whole, partial = masked_occurrences(batches, words, word)
            assert partial == 0 and whole >= 5, (word, whole, partial)

    plain = masking.dynamic_masking_dataset([corpus], vocab_file, 64, 64, 10, seed=2, repeat=False)
    whole, partial = masked_occurrences([{k: v.numpy() for k, v in b.items()} for b in plain], words,
                                        CHINA)
    assert partial > 20  # the check above can fail: token masking cuts the word


def test_bad_input_gives_one_clear_error(zh, tmp_path, monkeypatch):
    corpus, vocab_file, _, _, _ = zh
    # Mostly-CJK text, whole-word masking, no segmenter: both paths refuse and say what to pass.
    needs = r"corpus.txt: \d+% of its letters are CJK.*pass --word-segmenter jieba.*zh extra"
    with pytest.raises(word_segmentation.WordSegmenterError, match=needs):
        pretraining.create_pretraining_data(
            [corpus], vocab_file, str(tmp_path / "o"),
            pretraining.PretrainingOptions(whole_word_mask=True), show_progress=False)
    assert not (tmp_path / "o").exists()
    with pytest.raises(word_segmentation.WordSegmenterError, match=needs):
        masking.dynamic_masking_dataset([corpus], vocab_file, 8, whole_word_mask=True)
    # English with whole-word masking needs no segmenter, and Chinese without it is plain masking.
    english = tmp_path / "en.txt"
    english.write_text("The quick brown fox.\nIt jumps over 北京.\n\nA second document.\nTwo lines.\n")
    word_segmentation.check_word_segmenter(documents.read_documents(str(english)), "none", True, "en")
    masking.dynamic_masking_dataset([corpus], vocab_file, 8, seed=1)

    with pytest.raises(word_segmentation.WordSegmenterError, match="only for whole-word masking"):
        pretraining.PretrainingOptions(word_segmenter="jieba").validate()
    with pytest.raises(word_segmentation.WordSegmenterError, match="only for whole-word masking"):
        masking.dynamic_masking_dataset([corpus], vocab_file, 8, word_segmenter="jieba")
    with pytest.raises(word_segmentation.WordSegmenterError, match="unknown word segmenter 'ltp'"):
        pretraining.PretrainingOptions(whole_word_mask=True, word_segmenter="ltp").validate()
    with pytest.raises(TrainingError, match="word segmenter.*apply to raw text"):
        PretrainingConfig(model_config="c.json", data="x*.tfrecord", output_dir="o", total_steps=1,
                          word_segmenter="jieba").validate()
    with pytest.raises(word_segmentation.WordSegmenterError, match="only for whole-word masking"):
        PretrainingConfig(model_config="c.json", data=None, text=corpus, vocab_file=vocab_file,
                          output_dir="o", total_steps=1, word_segmenter="jieba").validate()

    # jieba requested but not installed: one error naming the extra.
    monkeypatch.setitem(sys.modules, "jieba", None)  # `import jieba` now raises ImportError
    with pytest.raises(word_segmentation.WordSegmenterError,
                       match=r"'jieba' is not installed: install the zh extra"):
        pretraining.create_pretraining_data(
            [corpus], vocab_file, str(tmp_path / "o2"),
            pretraining.PretrainingOptions(whole_word_mask=True, word_segmenter="jieba"),
            show_progress=False)


def test_command_line_flag(zh, tmp_path):
    import argparse

    from bert_tf.commands import create_pretraining_data as command
    from bert_tf.commands import pretrain

    parser = argparse.ArgumentParser()
    command.register(parser.add_subparsers())
    corpus = known_word_corpus(tmp_path / "known.txt", count=20)
    _, vocab_file, _, _, _ = zh
    args = parser.parse_args(["create-pretraining-data", "--input", corpus, "--vocab", vocab_file,
                              "--output", str(tmp_path / "out"), "--whole-word-mask",
                              "--word-segmenter", "jieba", "--max-seq-length", "32",
                              "--dupe-factor", "1", "--no-progress"])
    assert args.run(args) == 0
    assert tfrecords.read_metadata(str(tmp_path / "out"))["options"]["word_segmenter"] == "jieba"
    p = argparse.ArgumentParser()
    pretrain.add_arguments(p)
    with pytest.raises(SystemExit):
        p.parse_args(["--config", "c", "--text", "t", "--out", "o", "--steps", "1",
                      "--word-segmenter", "ltp"])
    args = p.parse_args(["--config", "c", "--text", "t", "--out", "o", "--steps", "1",
                         "--whole-word-mask", "--word-segmenter", "jieba"])
    assert args.word_segmenter == "jieba"
