"""Fine-tuned models across libraries, checked against transformers itself: a `BertFor*` directory
written by transformers → `bert-tf import` → `bert-tf predict` answers what transformers'
pipeline answers (and the logits equal the PyTorch model's); a bert_tf model directory →
`bert-tf convert` → transformers loads the `BertFor*` with no missing or unused weights and its
pipeline answers what predict answers. Tiny random models (a wide initializer keeps logits apart)
over the real MiniLM vocabulary; the real-data figures are in docs/results.md."""

import json
import logging
import os

import numpy as np
import pytest

import bert_tf.cli

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

TEXTS = ["Hello, my dog is cute", "A truly awful, tedious film.", "Anna Schmidt lives in Berlin .",
         "the Weather Service in Paris says rain will come to London on Tuesday"]
# NER inputs are words (CoNLL tokens): punctuation stands alone, as transformers' pre-tokenizer
# splits it, so that both sides see the same words.
NER_TEXTS = ["Hello , my dog is cute", "Anna Schmidt lives in Berlin .",
             "the Weather Service in Paris says rain will come to London on Tuesday"]
NER_LABELS = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]
QUESTIONS = ["Who lives in Berlin?", "What will come to London?"]
CONTEXTS = ["Anna Schmidt lives in Berlin and works in Paris.",
            "The Weather Service says rain will come to London on Tuesday."]


def hf_model_dir(path, minilm_dir, architecture, id2label=None, cased=False, seed=0, **extra):
    """A transformers `architecture` with random weights and the MiniLM tokenizer, saved by
    transformers (model.safetensors, tokenizer.json, tokenizer_config.json)."""
    torch.manual_seed(seed)
    config = transformers.BertConfig(
        vocab_size=30522, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=64, max_position_embeddings=64, initializer_range=0.3,
        **({"id2label": dict(enumerate(id2label)),
            "label2id": {n: i for i, n in enumerate(id2label)}} if id2label else {}), **extra)
    model = getattr(transformers, architecture)(config).eval()
    model.save_pretrained(path)
    tokenizer = transformers.AutoTokenizer.from_pretrained(minilm_dir, do_lower_case=not cased)
    tokenizer.model_max_length = 64
    tokenizer.save_pretrained(path)
    return str(path)


def import_dir(source, out, *extra, source_format="huggingface"):
    assert bert_tf.cli.main(["import", "--from", source_format, str(source), "--out", str(out),
                             *map(str, extra)]) == 0
    return str(out)


def predict_rows(model, data):
    out = data + ".predictions.jsonl"
    assert bert_tf.cli.main(["predict", "--model", model, "--data", data, "--output", out]) == 0
    with open(out, encoding="utf-8") as f:
        return [json.loads(line) for line in f]


def write_jsonl(path, texts):
    with open(path, "w", encoding="utf-8") as f:
        f.writelines(json.dumps({"text": t}) + "\n" for t in texts)
    return str(path)


def write_conll(path, texts):
    with open(path, "w", encoding="utf-8") as f:
        f.writelines("".join(w + "\n" for w in t.split()) + "\n" for t in texts)
    return str(path)


def pipeline_classes(directory, texts):
    pipe = transformers.pipeline("text-classification", model=directory, tokenizer=directory,
                                 top_k=None, device="cpu")
    return [{d["label"]: d["score"] for d in row} for row in pipe(texts)]


def assert_classifications_equal(rows, expected):
    for row, probabilities in zip(rows, expected):
        assert row["label"] == max(probabilities, key=probabilities.get)
        assert row["probabilities"].keys() == probabilities.keys()
        for name, p in probabilities.items():
            assert abs(row["probabilities"][name] - p) <= 1e-5, (name, row, probabilities)


def pipeline_entities(directory, texts):
    pipe = transformers.pipeline("token-classification", model=directory, tokenizer=directory,
                                 aggregation_strategy="first", device="cpu")
    return [[(e["entity_group"], e["start"], e["end"]) for e in row] for row in pipe(texts)]


def our_entities(rows):
    return [[(e["label"], e["start"], e["end"]) for e in row["entities"]] for row in rows]


def torch_logits(directory, texts, pairs=None):
    tokenizer = transformers.AutoTokenizer.from_pretrained(directory)
    config = transformers.AutoConfig.from_pretrained(directory)
    model = getattr(transformers, config.architectures[0]).from_pretrained(directory).eval()
    batch = tokenizer(texts, pairs, padding=True, return_tensors="pt")
    with torch.no_grad():
        out = model(**batch)
    return {k: v.numpy() for k, v in out.items()}, batch


# ---------------------------------------------------------------------- HF → bert_tf
@pytest.mark.slow
@pytest.mark.parametrize("cased", [False, True], ids=["uncased", "cased"])
def test_imported_classifier_predicts_what_the_transformers_pipeline_answers(tmp_path, minilm_dir,
                                                                           cased):
    source = hf_model_dir(tmp_path / "hf", minilm_dir, "BertForSequenceClassification",
                          ["negative", "neutral", "positive"], cased=cased)
    model = import_dir(source, tmp_path / "imported")
    task = json.load(open(os.path.join(model, "task.json")))
    assert (task["task"], task["max_length"], task["lowercase"]) == ("classify", 64, not cased)
    assert json.load(open(os.path.join(model, "labels.json"))) == ["negative", "neutral",
                                                                   "positive"]
    rows = predict_rows(model, write_jsonl(tmp_path / "texts.jsonl", TEXTS))
    assert_classifications_equal(rows, pipeline_classes(source, TEXTS))


@pytest.mark.slow
def test_imported_token_classifier_finds_the_pipelines_entities(tmp_path, minilm_dir):
    source = hf_model_dir(tmp_path / "hf", minilm_dir, "BertForTokenClassification", NER_LABELS,
                          seed=3)
    model = import_dir(source, tmp_path / "imported")
    rows = predict_rows(model, write_conll(tmp_path / "texts.conll", NER_TEXTS))
    expected = pipeline_entities(source, NER_TEXTS)
    assert our_entities(rows) == expected
    assert any(expected), "random weights found no entity: the comparison would be empty"


def test_imported_span_labeler_gives_the_pytorch_models_logits(tmp_path, minilm_dir):
    """QA: transformers' pipeline windows and ranks spans its own way, so the model is compared
    on its outputs: the same start/end logits for the same question/context pieces."""
    import tensorflow as tf

    from bert_tf.tasks.model_dir import FinetunedModel
    source = hf_model_dir(tmp_path / "hf", minilm_dir, "BertForQuestionAnswering", seed=5)
    model = import_dir(source, tmp_path / "imported")
    expected, batch = torch_logits(source, QUESTIONS, CONTEXTS)
    loaded = FinetunedModel.load(model)
    assert loaded.task_type == "squad"
    features = {"input_ids": tf.constant(batch["input_ids"].numpy(), tf.int32),
                "token_type_ids": tf.constant(batch["token_type_ids"].numpy(), tf.int32),
                "attention_mask": tf.constant(batch["attention_mask"].numpy(), tf.int32)}
    got = loaded.model(features, training=False)
    mask = batch["attention_mask"].numpy().astype(bool)
    for name in ("start_logits", "end_logits"):
        np.testing.assert_allclose(np.asarray(got[name])[mask], expected[name][mask], atol=1e-4)


def test_a_task_models_encoder_loads_without_its_head(tmp_path, minilm_dir, caplog):
    """`finetune --init` (load_encoder) on a BertForSequenceClassification directory: the
    encoder's weights, the head left out (logged), not an unused-tensor error."""
    from bert_tf.models.pretrained import load_encoder
    source = hf_model_dir(tmp_path / "hf", minilm_dir, "BertForSequenceClassification",
                          ["a", "b"])
    with caplog.at_level(logging.INFO, logger="bert_tf"):
        encoder = load_encoder(source)
    assert "not loading 2 head tensors" in caplog.text
    expected = transformers.BertForSequenceClassification.from_pretrained(source).bert.pooler
    got = encoder.pooler.dense.kernel.numpy()
    np.testing.assert_array_equal(got, expected.dense.weight.detach().numpy().T)


@pytest.mark.slow
def test_regression_and_pair_import(tmp_path, minilm_dir):
    source = hf_model_dir(tmp_path / "hf", minilm_dir, "BertForSequenceClassification",
                          num_labels=1, problem_type="regression")
    model = import_dir(source, tmp_path / "imported", "--pair")
    task = json.load(open(os.path.join(model, "task.json")))
    assert task["task"] == "regress" and task["task_settings"]["text_pair_column"] == "text_pair"
    path = tmp_path / "pairs.jsonl"
    with open(path, "w", encoding="utf-8") as f:
        f.writelines(json.dumps({"text": q, "text_pair": c}) + "\n"
                     for q, c in zip(QUESTIONS, CONTEXTS))
    rows = predict_rows(model, str(path))
    expected, _ = torch_logits(source, QUESTIONS, CONTEXTS)
    np.testing.assert_allclose([r["score"] for r in rows], expected["logits"][:, 0], atol=1e-5)


# ---------------------------------------------------------------------- bert_tf → HF
def write_our_model_dir(directory, minilm_vocab, task_type, labels, settings=None, seed=0,
                        hidden_act="gelu"):
    import keras

    from bert_tf import BertConfig, BertEncoder
    from bert_tf.tasks import model_dir
    from bert_tf.tasks.registry import make_task
    from bert_tf.text import BertTokenizer
    from bert_tf.text.vocabulary import read_vocabulary
    keras.utils.set_random_seed(seed)
    vocabulary = read_vocabulary(minilm_vocab)
    task = make_task(task_type, BertTokenizer(vocabulary, sequence_length=64), labels,
                     settings or {})
    model = task.build_model(BertEncoder(BertConfig(
        vocab_size=len(vocabulary), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=64, max_position_embeddings=64, initializer_range=0.3,
        hidden_act=hidden_act)))
    os.makedirs(directory)
    model_dir.save_model_atomic(model, directory)
    model_dir.write_labels(directory, task.label_names)
    model_dir.write_vocab(directory, vocabulary)
    model_dir.write_task(directory, {"task": task_type, "max_length": 64, "lowercase": True,
                                     "task_settings": task.settings()})
    return str(directory)


class _Records(logging.Handler):
    def __init__(self):
        super().__init__(logging.WARNING)
        self.messages = []

    def emit(self, record):
        self.messages.append(record.getMessage())


def load_warnings(directory, architecture=None):
    """(the transformers model, the warnings its from_pretrained logged: the load report of
    missing / unused / mismatched weights). transformers' loggers do not propagate to the root
    logger, so the handler sits on its own."""
    if architecture is None:
        architecture = transformers.AutoConfig.from_pretrained(directory).architectures[0]
    handler, hf_logger = _Records(), logging.getLogger("transformers")
    hf_logger.addHandler(handler)
    try:
        model = getattr(transformers, architecture).from_pretrained(directory)
    finally:
        hf_logger.removeHandler(handler)
    return model, handler.messages


def load_quietly(directory, caplog=None):
    model, problems = load_warnings(directory)
    assert not problems, problems
    return model


def test_the_warning_check_sees_a_missing_head(minilm_dir):
    """The control for load_quietly: a checkpoint without the classifier is reported."""
    _, problems = load_warnings(minilm_dir, "BertForSequenceClassification")
    assert any("classifier.weight" in p for p in problems), problems


@pytest.mark.slow
def test_exported_classifier_loads_in_transformers_and_answers_like_predict(tmp_path,
                                                                           minilm_vocab, caplog):
    ours = write_our_model_dir(tmp_path / "ours", minilm_vocab, "classify", ("no", "maybe", "yes"))
    out = str(tmp_path / "hf")
    assert bert_tf.cli.main(["convert", "--input", ours, "--output", out,
                             "--format", "huggingface"]) == 0
    config = json.load(open(os.path.join(out, "config.json")))
    assert config["architectures"] == ["BertForSequenceClassification"]
    assert config["id2label"] == {"0": "no", "1": "maybe", "2": "yes"}
    assert json.load(open(os.path.join(out, "tokenizer_config.json")))["model_max_length"] == 64
    load_quietly(out, caplog)
    rows = predict_rows(ours, write_jsonl(tmp_path / "texts.jsonl", TEXTS))
    assert_classifications_equal(rows, pipeline_classes(out, TEXTS))
    # and back: the import of our export is the same model
    again = import_dir(out, tmp_path / "again")
    assert predict_rows(again, str(tmp_path / "texts.jsonl")) == rows


@pytest.mark.slow
def test_exported_token_classifier_and_span_labeler_load_without_a_pooler(tmp_path, minilm_vocab,
                                                                         caplog):
    ours = write_our_model_dir(tmp_path / "ner", minilm_vocab, "ner", tuple(NER_LABELS), seed=2)
    out = str(tmp_path / "hf_ner")
    assert bert_tf.cli.main(["convert", "--input", ours, "--output", out]) == 0
    load_quietly(out, caplog)
    rows = predict_rows(ours, write_conll(tmp_path / "texts.conll", NER_TEXTS))
    expected = pipeline_entities(out, NER_TEXTS)
    assert our_entities(rows) == expected and any(expected)

    squad = write_our_model_dir(tmp_path / "squad", minilm_vocab, "squad", (), seed=4)
    out = str(tmp_path / "hf_squad")
    assert bert_tf.cli.main(["convert", "--input", squad, "--output", out]) == 0
    load_quietly(out, caplog)
    expected, batch = torch_logits(out, QUESTIONS, CONTEXTS)
    again = import_dir(out, tmp_path / "squad_again")
    from bert_tf.tasks.model_dir import FinetunedModel
    got = FinetunedModel.load(again).model(
        {k: np.asarray(batch[k].numpy(), np.int32)
         for k in ("input_ids", "token_type_ids", "attention_mask")}, training=False)
    mask = batch["attention_mask"].numpy().astype(bool)
    np.testing.assert_allclose(np.asarray(got["start_logits"])[mask],
                               expected["start_logits"][mask], atol=1e-4)


def test_google_export_uses_run_classifier_names(tmp_path, minilm_vocab):
    from bert_tf.weights.google import find_checkpoint_prefix, read_tf1_checkpoint
    ours = write_our_model_dir(tmp_path / "ours", minilm_vocab, "classify", ("a", "b"))
    out = str(tmp_path / "google")
    assert bert_tf.cli.main(["convert", "--input", ours, "--output", out,
                             "--format", "google"]) == 0
    tensors = read_tf1_checkpoint(find_checkpoint_prefix(out))
    assert tensors["output_weights"].shape == (2, 32) and tensors["output_bias"].shape == (2,)
    assert "bert/pooler/dense/kernel" in tensors
    assert os.path.isfile(os.path.join(out, "vocab.txt"))


# ---------------------------------------------------------------------- bad input
def test_bad_sources_get_one_clear_error(tmp_path, minilm_dir, capsys, caplog):
    def refused(source, *extra):
        code = bert_tf.cli.main(["import", str(source), "--out", str(tmp_path / "x"),
                                 *map(str, extra)])
        err = capsys.readouterr().err
        assert code == 2 and "Traceback" not in err, err
        assert not os.path.exists(tmp_path / "x")
        return err

    torch.manual_seed(0)
    roberta = tmp_path / "roberta"
    transformers.RobertaForSequenceClassification(transformers.RobertaConfig(
        vocab_size=100, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
        intermediate_size=32)).save_pretrained(roberta)
    assert "not a BERT model (model_type 'roberta'" in refused(roberta)

    encoder = tmp_path / "encoder"
    transformers.BertModel(transformers.BertConfig(
        vocab_size=30522, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
        intermediate_size=32)).save_pretrained(encoder)
    assert "use it as `bert-tf finetune --init`" in refused(encoder)

    source = hf_model_dir(tmp_path / "hf", minilm_dir, "BertForSequenceClassification",
                          ["a", "b"])
    config_path = os.path.join(source, "config.json")
    config = json.load(open(config_path))
    json.dump({**config, "id2label": {"0": "a", "1": "b", "2": "c"},
               "label2id": {"a": 0, "b": 1, "c": 2}}, open(config_path, "w"))
    assert "head has 2 outputs but id2label names 3 labels" in refused(source)
    json.dump({**config, "id2label": {"0": "a", "1": "b", "01": "c"}}, open(config_path, "w"))
    assert "not 0..2, each once" in refused(source)   # "01" is id 1 a second time
    json.dump({k: v for k, v in config.items() if k not in ("id2label", "label2id")},
              open(config_path, "w"))
    with caplog.at_level(logging.WARNING):
        imported = import_dir(source, tmp_path / "unnamed")
    assert json.load(open(os.path.join(imported, "labels.json"))) == ["LABEL_0", "LABEL_1"]
    assert "no id2label" in caplog.text
    json.dump(config, open(config_path, "w"))

    tokenizer_path = os.path.join(source, "tokenizer.json")
    tokenizer = json.load(open(tokenizer_path))
    json.dump({**tokenizer, "model": {**tokenizer["model"], "type": "BPE"}},
              open(tokenizer_path, "w"))
    assert "a 'BPE' tokenizer model, not WordPiece" in refused(source)
    json.dump({**tokenizer, "normalizer": {**tokenizer["normalizer"], "strip_accents": True,
                                           "lowercase": False}}, open(tokenizer_path, "w"))
    assert "strips accents exactly when it lowercases" in refused(source)
    json.dump(tokenizer, open(tokenizer_path, "w"))
    assert "must be 8..64" in refused(source, "--max-length", 100)
    assert "a label is named twice" in refused(source, "--labels", "a,a")
    tagger = hf_model_dir(tmp_path / "tagger", minilm_dir, "BertForTokenClassification",
                          ["O", "PER", "LOC"])
    assert "reads IOB2 tags" in refused(tagger)
    os.makedirs(tmp_path / "x")
    open(tmp_path / "x" / "keep", "w").close()
    code = bert_tf.cli.main(["import", source, "--out", str(tmp_path / "x")])
    assert code == 2 and "exists; choose a new directory" in capsys.readouterr().err


# ---------------------------------------------------------------------- KerasHub
def keras_hub_classifier(minilm_vocab, num_classes=2):
    keras_hub = pytest.importorskip("keras_hub")
    import keras

    from bert_tf.text.vocabulary import read_vocabulary
    keras.utils.set_random_seed(0)
    tokenizer = keras_hub.models.BertTokenizer(vocabulary=read_vocabulary(minilm_vocab),
                                               lowercase=True, strip_accents=True)
    preprocessor = keras_hub.models.BertTextClassifierPreprocessor(tokenizer, sequence_length=32)
    backbone = keras_hub.models.BertBackbone(
        vocabulary_size=tokenizer.vocabulary_size(), num_layers=2, num_heads=2, hidden_dim=16,
        intermediate_dim=32, max_sequence_length=64)
    return keras_hub.models.BertTextClassifier(backbone, num_classes=num_classes,
                                               preprocessor=preprocessor)


def softmax(logits):
    e = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


@pytest.mark.slow
def test_keras_hub_classifier_trained_a_few_steps_imports_with_equal_outputs(tmp_path,
                                                                            minilm_vocab):
    classifier = keras_hub_classifier(minilm_vocab, num_classes=3)
    classifier.fit(x=TEXTS * 4, y=np.array([0, 1, 2, 1] * 4), batch_size=4, epochs=1, verbose=0)
    preset = str(tmp_path / "preset")
    classifier.save_to_preset(preset)
    model = import_dir(preset, tmp_path / "imported", "--labels", "bad,meh,good",
                       source_format="keras_hub")
    rows = predict_rows(model, write_jsonl(tmp_path / "texts.jsonl", TEXTS))
    expected = softmax(np.asarray(classifier.predict(TEXTS, verbose=0), np.float64))
    for row, p in zip(rows, expected):
        assert row["label"] == ("bad", "meh", "good")[int(np.argmax(p))]
        np.testing.assert_allclose([row["probabilities"][n] for n in ("bad", "meh", "good")], p,
                                   atol=1e-5)


@pytest.mark.slow
def test_our_classifier_as_a_keras_hub_preset(tmp_path, minilm_vocab, capsys):
    keras_hub = pytest.importorskip("keras_hub")
    ours = write_our_model_dir(tmp_path / "ours", minilm_vocab, "classify", ("x", "y"),
                               hidden_act="gelu_tanh")
    out = str(tmp_path / "preset")
    assert bert_tf.cli.main(["convert", "--input", ours, "--output", out,
                             "--format", "keras_hub"]) == 0
    classifier = keras_hub.models.BertTextClassifier.from_preset(out)
    rows = predict_rows(ours, write_jsonl(tmp_path / "texts.jsonl", TEXTS))
    expected = softmax(np.asarray(classifier.predict(TEXTS, verbose=0), np.float64))
    np.testing.assert_allclose([[r["probabilities"][n] for n in ("x", "y")] for r in rows],
                               expected, atol=1e-5)
    # what KerasHub cannot hold: an exact-gelu encoder, a token classifier
    exact = write_our_model_dir(tmp_path / "exact", minilm_vocab, "classify", ("x", "y"))
    ner = write_our_model_dir(tmp_path / "ner", minilm_vocab, "ner", tuple(NER_LABELS))
    for model, message in ((exact, "always uses the tanh approximation of gelu"),
                           (ner, "KerasHub has no ner model for BERT")):
        code = bert_tf.cli.main(["convert", "--input", model, "--output", str(tmp_path / "no"),
                                 "--format", "keras_hub"])
        err = capsys.readouterr().err
        assert code == 2 and message in err and "Traceback" not in err, err
        assert not os.path.exists(tmp_path / "no")


# ---------------------------------------------------------------------- Model Garden
@pytest.mark.slow
@pytest.mark.parametrize("task_type", ["classify", "ner", "squad"])
def test_model_garden_task_checkpoint_imports_with_equal_outputs(tmp_path, minilm_vocab,
                                                                 task_type):
    """A fine-tuned Model Garden task model (tf_keras), saved as its trainer saves it
    (`tf.train.Checkpoint(model=...)`), imports with the outputs Model Garden computes."""
    pytest.importorskip("official.nlp.modeling")
    import tensorflow as tf
    from official.nlp.modeling import models as garden_models
    from official.nlp.modeling import networks as garden_networks

    from bert_tf.tasks.model_dir import FinetunedModel
    tf.keras.utils.set_random_seed(7)
    network = garden_networks.BertEncoderV2(
        vocab_size=30522, hidden_size=16, num_layers=2, num_attention_heads=2, inner_dim=32,
        max_sequence_length=64, initializer=tf.keras.initializers.TruncatedNormal(stddev=0.3))
    if task_type == "classify":
        model, labels = garden_models.BertClassifier(network, num_classes=3), "a,b,c"
    elif task_type == "ner":
        model, labels = garden_models.BertTokenClassifier(network, num_classes=5), \
            ",".join(NER_LABELS)
    else:
        model, labels = garden_models.BertSpanLabeler(network), None
    rng = np.random.default_rng(0)
    ids = rng.integers(1000, 30000, size=(3, 20)).astype(np.int32)
    mask = np.ones_like(ids)
    mask[1, 12:] = 0
    types = np.zeros_like(ids)
    types[:, 10:] = 1
    expected = model({"input_word_ids": ids, "input_mask": mask, "input_type_ids": types})
    if isinstance(expected, (list, tuple)):     # BertSpanLabeler: [start, end]
        expected = dict(zip(("start_logits", "end_logits"), expected))
    if isinstance(expected, dict) and "logits" in expected:   # BertTokenClassifier
        expected = expected["logits"]
    tf.train.Checkpoint(model=model).save(str(tmp_path / "mg" / "ckpt"))
    args = ["--task", task_type, "--vocab", minilm_vocab, "--max-length", 64]
    imported = import_dir(tmp_path / "mg", tmp_path / "imported", *args,
                          *(["--labels", labels] if labels else []), source_format="model_garden")
    got = FinetunedModel.load(imported).model(
        {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}, training=False)
    real = mask.astype(bool)
    if task_type == "squad":
        for name in ("start_logits", "end_logits"):
            np.testing.assert_allclose(np.asarray(got[name])[real],
                                       np.asarray(expected[name])[real], atol=1e-4)
    elif task_type == "ner":
        np.testing.assert_allclose(np.asarray(got["logits"])[real],
                                   np.asarray(expected)[real], atol=1e-4)
    else:
        np.testing.assert_allclose(np.asarray(got["logits"]), np.asarray(expected), atol=1e-4)


def test_model_garden_heads_bert_does_not_have_are_refused(tmp_path, minilm_vocab, capsys):
    pytest.importorskip("official.nlp.modeling")
    import tensorflow as tf
    from official.nlp.modeling import models as garden_models
    from official.nlp.modeling import networks as garden_networks
    network = garden_networks.BertEncoderV2(
        vocab_size=30522, hidden_size=16, num_layers=1, num_attention_heads=2, inner_dim=32,
        max_sequence_length=64)
    # use_encoder_pooler=False: a ClassificationHead with its own inner dense on [CLS]
    model = garden_models.BertClassifier(network, num_classes=2, use_encoder_pooler=False)
    ids = np.ones((1, 8), np.int32)
    model({"input_word_ids": ids, "input_mask": ids, "input_type_ids": 0 * ids})
    tf.train.Checkpoint(model=model).save(str(tmp_path / "mg" / "ckpt"))
    for extra, message in ((["--task", "classify", "--vocab", minilm_vocab],
                            "expected the task head to be one Dense layer"),
                           (["--vocab", minilm_vocab], "--task is required"),
                           (["--task", "classify"], "--vocab is required")):
        code = bert_tf.cli.main(["import", "--from", "model_garden", str(tmp_path / "mg"),
                                 "--out", str(tmp_path / "x"), *map(str, extra)])
        err = capsys.readouterr().err
        assert code == 2 and message in err and "Traceback" not in err, err
        assert not os.path.exists(tmp_path / "x")
