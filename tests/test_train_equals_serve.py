"""Train = serve: what `bert-tf predict` answers for a fine-tuned model directory is what every
export of it answers.

The matrix: tasks {single-text classification, sentence-pair classification, regression, NER,
SQuAD 1.1, SQuAD 2.0, sentence embeddings} × paths {`bert-tf predict`, the SavedModel's `serving_default` in a fresh
process with only tensorflow + tensorflow_text, `serve_ids` and `serve_examples` there (the task's
own windows in, its decoder on the outputs), gRPC (loopback PredictionService), TFLite float32
with length signatures (the tokenizer inside where the task's serving path fits TFLite, else the
task's windows around `serve_ids`; each input or window at the shortest of 8/16/32 positions that
holds it)} × {uncased vocab (the real bert-base-uncased one), cased vocab}. Every model is
exported with the plain commands (`bert-tf export saved-model --model DIR --out OUT`,
`bert-tf export tflite --model DIR --out FILE --lengths 8,16 --no-verify`), and the inputs
include texts longer than the sequence length and QA contexts spanning several windows. Each path's answers are
turned into predict's rows by the task (`task.rows`) and must equal predict's: labels, entity
spans, answers and character offsets exactly, scores within 1e-5 (TFLite 1e-4).

The pair classifier is fine-tuned by `bert-tf finetune classify --text-pair-column`, so the
contract is tested from the command that writes the directory; the others are written through
`bert_tf.tasks.model_dir` with random weights (a wide initializer keeps logits apart, so float
rounding between paths cannot flip an answer).
"""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf

import bert_tf.cli
from bert_tf import BertConfig, BertEncoder
from bert_tf.export.loopback_server import LoopbackPredictionServer
from bert_tf.export.saved_model import serialized_examples
from bert_tf.export.serving_client import grpc_predict, predict_request
from bert_tf.export.tflite_runner import TFLiteTaskRunner
from bert_tf.tasks import model_dir
from bert_tf.tasks.inference import decode_strings
from bert_tf.tasks.registry import make_task
from bert_tf.text import BertTokenizer

pytestmark = pytest.mark.slow

SEQUENCE_LENGTH = 32
LONG = ("The quick brown fox jumps over the lazy dog near the river bank while Anna Schmidt "
        "from Berlin watches, and the Weather Service in Paris says rain will come to London "
        "on Tuesday; nobody at Google or the United Nations expected that, said Barack Obama.")
TEXTS = ["Hello, my dog is cute", "A truly awful, tedious film.", "Un café très élégant à Paris!",
         LONG, "ok"]
PAIRS = ["Is it raining?", "The streets are wet, très wet, today.", "Anna lives in Berlin.",
         "short", LONG]
CONTEXTS = [LONG + " " + LONG.replace("Paris", "Lyon"),
            "BERT was published by researchers at Google in 2018. It changed NLP.",
            "Zoë Müller wrote the café menu in Zürich; the menu lists crêpes and tea.",
            "nothing"]
QUESTIONS = ["Where does Anna Schmidt come from?", "Who published BERT?",
             "What does the menu list?", "What?"]
NER_LABELS = ("O", "B-PER", "I-PER", "B-LOC", "I-LOC", "B-ORG", "I-ORG")


def cased_vocabulary(texts) -> list:
    """A small cased WordPiece vocabulary: every character of the texts (upper and lower case,
    alone and as a ## continuation) and their words as they are written."""
    import re
    chars = sorted({c for t in texts for c in t if not c.isspace()})
    words = sorted({w for t in texts for w in re.findall(r"\w+", t)})
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    for token in chars + ["##" + c for c in chars if c.isalnum()] + words:
        if token not in vocab:
            vocab.append(token)
    return vocab


def all_texts():
    return TEXTS + PAIRS + CONTEXTS + QUESTIONS


# ---------------------------------------------------------------------- the model directories
TASKS = {  # name: (task type, task settings, label names)
    "classify": ("classify", {}, ("negative", "neutral", "positive")),
    "classify_pair": ("classify", {"text_pair_column": "text_pair"}, ("no", "yes")),
    "regress": ("regress", {}, ()),
    "ner": ("ner", {"stride": 10}, NER_LABELS),
    "squad": ("squad", {"doc_stride": 8, "max_query_length": 8, "max_answer_length": 12,
                        "n_best_size": 5}, ()),
    "squad2": ("squad", {"doc_stride": 8, "max_query_length": 8, "max_answer_length": 12,
                         "n_best_size": 5, "version_2": True,
                         "null_score_diff_threshold": -1.0}, ()),
    "embed": ("embed", {"pooling": "mean"}, ()),
}


def write_random_model_dir(directory, task_type, settings, labels, vocabulary, lowercase, seed):
    import keras
    keras.utils.set_random_seed(seed)
    tokenizer = BertTokenizer(vocabulary, lowercase=lowercase, sequence_length=SEQUENCE_LENGTH)
    task = make_task(task_type, tokenizer, labels, settings)
    config = BertConfig(vocab_size=len(vocabulary), hidden_size=16, num_hidden_layers=2,
                        num_attention_heads=2, intermediate_size=32, max_position_embeddings=64,
                        initializer_range=0.3)
    model = task.build_model(BertEncoder(config))
    os.makedirs(directory)
    model_dir.save_model_atomic(model, directory)
    model_dir.write_labels(directory, task.label_names)
    model_dir.write_vocab(directory, vocabulary)
    model_dir.write_task(directory, {"task": task_type, "max_length": SEQUENCE_LENGTH,
                                     "lowercase": lowercase, "task_settings": task.settings()})
    return directory


def finetune_pair_classifier(directory, vocabulary, lowercase, tmp):
    """The pair classifier, from `bert-tf finetune classify --text-pair-column` (2 steps)."""
    import keras
    keras.utils.set_random_seed(5)
    init = os.path.join(tmp, "init")
    config = BertConfig(vocab_size=len(vocabulary), hidden_size=16, num_hidden_layers=2,
                        num_attention_heads=2, intermediate_size=32, max_position_embeddings=64,
                        initializer_range=0.3)
    BertEncoder(config).save_pretrained(init)
    with open(os.path.join(init, "vocab.txt"), "w", encoding="utf-8") as f:
        f.write("".join(t + "\n" for t in vocabulary))
    train = os.path.join(tmp, "pairs.jsonl")
    with open(train, "w", encoding="utf-8") as f:
        for i, (a, b) in enumerate(zip(TEXTS, PAIRS)):
            f.write(json.dumps({"question": a, "sentence": b, "label": "yes" if i % 2 else "no"})
                    + "\n")
    argv = ["finetune", "classify", "--init", init, "--train", train, "--out", directory,
            "--text-column", "question", "--text-pair-column", "sentence",
            "--max-length", SEQUENCE_LENGTH, "--batch-size", 4, "--epochs", 2,
            "--learning-rate", 1e-2, "--no-progress", "--strategy", "one_device"]
    if not lowercase:
        argv.append("--cased")
    assert bert_tf.cli.main([str(a) for a in argv]) == 0
    return directory


# ---------------------------------------------------------------------- inputs per task
def inputs_for(name):
    """(predict's input file text and suffix, the serving inputs {name: [str]}) for one task."""
    if name in ("classify", "regress"):
        lines = "".join(json.dumps({"text": t}) + "\n" for t in TEXTS)
        return (lines, ".jsonl"), {"text": TEXTS}
    if name == "classify_pair":
        lines = "".join(json.dumps({"question": a, "sentence": b}) + "\n"
                        for a, b in zip(TEXTS, PAIRS))
        return (lines, ".jsonl"), {"text": TEXTS, "text_pair": PAIRS}
    if name == "embed":   # one text per line; the empty line is a text too ([CLS] [SEP])
        texts = TEXTS + [""] + PAIRS
        return ("".join(t + "\n" for t in texts), ".txt"), {"text": texts}
    if name == "ner":
        sentences = [t.split() for t in TEXTS + PAIRS if t.split()]
        conll = "".join("".join(w + "\n" for w in s) + "\n" for s in sentences)
        return (conll, ".conll"), {"text": [" ".join(s) for s in sentences]}
    paragraphs = [{"context": c, "qas": [{"id": f"q{i}", "question": q}]}
                  for i, (q, c) in enumerate(zip(QUESTIONS, CONTEXTS))]
    squad = json.dumps({"version": "1.1", "data": [{"title": "t", "paragraphs": paragraphs}]})
    return (squad, ".json"), {"question": QUESTIONS, "context": CONTEXTS}


VOCABULARIES = ("uncased", "cased")
KEYS = [f"{name}-{v}" for v in VOCABULARIES for name in TASKS]


def vocabulary_for(v, minilm_vocab):
    from bert_tf.text.vocabulary import read_vocabulary
    return (read_vocabulary(minilm_vocab), True) if v == "uncased" else \
        (cased_vocabulary(all_texts()), False)


def build_case(root, key, minilm_vocab):
    """One (task, vocab) model directory, its predict rows and its plain exports, all written
    under `root` by the CLI commands a user runs."""
    name, v = key.rsplit("-", 1)
    vocabulary, lowercase = vocabulary_for(v, minilm_vocab)
    task_type, settings, labels = TASKS[name]
    directory = os.path.join(root, key)
    if name == "classify_pair":
        scratch = os.path.join(root, key + "-scratch")
        os.makedirs(scratch)
        finetune_pair_classifier(directory, vocabulary, lowercase, scratch)
    else:
        write_random_model_dir(directory, task_type, settings, labels, vocabulary, lowercase,
                               list(TASKS).index(name))
    (content, suffix), _ = inputs_for(name)
    data = os.path.join(root, f"{key}-input{suffix}")
    with open(data, "w", encoding="utf-8") as f:
        f.write(content)
    assert bert_tf.cli.main(["predict", "--model", directory, "--data", data,
                             "--output", os.path.join(root, f"{key}-predict.jsonl")]) == 0
    assert bert_tf.cli.main(["export", "saved-model", "--model", directory,
                             "--out", os.path.join(root, "saved_models", key)]) == 0
    assert bert_tf.cli.main(["export", "tflite", "--model", directory,
                             "--out", os.path.join(root, f"{key}.tflite"), "--lengths", "8,16",
                             "--no-verify"]) == 0


BUILD_WORKER = textwrap.dedent("""
    import json, sys
    sys.path.insert(0, sys.argv[1])
    import test_train_equals_serve as matrix
    plan = json.load(open(sys.argv[2]))
    for key in plan["keys"]:
        matrix.build_case(plan["root"], key, plan["minilm_vocab"])
""")


@pytest.fixture(scope="module")
def matrix(tmp_path_factory, minilm_vocab):
    """Every (task, vocab) model directory, its predict rows and its plain exports.

    Building them is mostly single-threaded tracing and conversion, so two worker processes
    (one per CPU core of the CI machine) build half the cases each; each case is built by the
    same commands either way."""
    root = tmp_path_factory.mktemp("train_equals_serve")
    workers = []
    for i in range(2):
        plan = root / f"plan{i}.json"
        plan.write_text(json.dumps({"root": str(root), "keys": KEYS[i::2],
                                    "minilm_vocab": minilm_vocab}))
        log = open(root / f"worker{i}.log", "w")
        workers.append((subprocess.Popen(
            [sys.executable, "-c", BUILD_WORKER, os.path.dirname(__file__), str(plan)],
            stdout=log, stderr=subprocess.STDOUT, cwd=str(root)), log, root / f"worker{i}.log"))
    for process, log, path in workers:
        code = process.wait(timeout=900)
        log.close()
        assert code == 0, path.read_text()[-3000:]
    cases = {}
    for key in KEYS:
        name = key.rsplit("-", 1)[0]
        directory = str(root / key)
        _, texts = inputs_for(name)
        data = next(str(p) for p in root.glob(f"{key}-input.*"))
        rows = [json.loads(line)
                for line in (root / f"{key}-predict.jsonl").read_text().splitlines()]
        loaded = model_dir.FinetunedModel.load(directory)
        cases[key] = {"dir": directory, "rows": rows, "texts": texts, "task": loaded.task,
                      "records": loaded.task.read(data, labeled=False),
                      "tflite": str(root / f"{key}.tflite"),
                      "version_dir": str(root / "saved_models" / key / "1")}
    fresh = run_fresh_process(cases, root)
    for key, outputs in fresh.items():
        cases[key]["fresh"] = outputs
    return cases


FRESH_PROCESS = textwrap.dedent("""
    import json, sys
    import numpy as np
    import tensorflow as tf
    import tensorflow_text  # noqa: F401  (the tokenizer's ops; nothing of bert_tf is imported)
    requests = json.load(open(sys.argv[1]))
    for key, request in requests.items():
        loaded = tf.saved_model.load(request["version_dir"])
        out = {}
        texts = {k: tf.constant(v) for k, v in request["texts"].items()}
        for name, value in loaded.signatures["serving_default"](**texts).items():
            out["serving_default/" + name] = value.numpy()
        ids = dict(np.load(request["ids"], allow_pickle=True))
        features = {k: tf.constant(ids[k]) for k in ("input_ids", "token_type_ids",
                                                     "attention_mask")}
        for name, value in loaded.signatures["serve_ids"](**features).items():
            out["serve_ids/" + name] = value.numpy()
        examples = tf.constant(ids["examples"])
        for name, value in loaded.signatures["serve_examples"](examples=examples).items():
            out["serve_examples/" + name] = value.numpy()
        np.savez(request["out"], **out)
    assert not [m for m in sys.modules if m.startswith("bert_tf")]
""")


def run_fresh_process(cases, root):
    """All SavedModels in one new Python process that imports only tensorflow + tensorflow_text;
    the windows for serve_ids/serve_examples come from the task's own serving_features."""
    requests = {}
    for key, case in cases.items():
        task = case["task"]
        features, state = task.serving_features(
            {k: tf.constant(v) for k, v in case["texts"].items()})
        ids = {k: np.asarray(features[k], np.int32) for k in ("input_ids", "token_type_ids",
                                                                "attention_mask")}
        ids_path = str(root / f"{key}-ids.npz")
        np.savez(ids_path, examples=serialized_examples(ids), **ids)
        case["features"], case["state"] = features, state
        requests[key] = {"version_dir": case["version_dir"], "texts": case["texts"],
                         "ids": ids_path, "out": str(root / f"{key}-fresh.npz")}
    request_file = root / "requests.json"
    request_file.write_text(json.dumps(requests))
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    result = subprocess.run([sys.executable, "-c", FRESH_PROCESS, str(request_file)],
                            capture_output=True, text=True, timeout=600, env=env,
                            cwd=str(root))
    assert result.returncode == 0, result.stderr[-3000:]
    return {key: dict(np.load(r["out"], allow_pickle=True)) for key, r in requests.items()}


# ---------------------------------------------------------------------- comparing
def assert_rows_equal(got, expected, atol, where):
    """Predict rows: strings, ints, labels and offsets exactly; floats within atol."""
    assert len(got) == len(expected), where
    for i, (g, e) in enumerate(zip(got, expected)):
        assert_same(g, e, atol, f"{where} row {i}")


def assert_same(got, expected, atol, where):
    if isinstance(expected, dict):
        assert isinstance(got, dict) and set(got) == set(expected), (where, got, expected)
        for k in expected:
            assert_same(got[k], expected[k], atol, f"{where}.{k}")
    elif isinstance(expected, list):
        assert isinstance(got, list) and len(got) == len(expected), (where, got, expected)
        for i, (g, e) in enumerate(zip(got, expected)):
            assert_same(g, e, atol, f"{where}[{i}]")
    elif isinstance(expected, float) and not isinstance(got, str):
        assert abs(float(got) - expected) <= atol, (where, got, expected)
    else:
        assert got == expected, (where, got, expected)


def prefixed(outputs, prefix):
    return decode_strings({k[len(prefix):]: np.asarray(v) for k, v in outputs.items()
                           if k.startswith(prefix)})


def decoded_from_ids(case, outputs):
    """Raw per-window outputs of serve_ids/serve_examples → the task's answers, by its decoder."""
    task = case["task"]
    texts = {k: tf.constant(v) for k, v in case["texts"].items()}
    decoded = task.decode({k: tf.constant(v) for k, v in outputs.items()}, case["state"], texts)
    return decode_strings({k: np.asarray(v) for k, v in decoded.items()})



@pytest.mark.parametrize("key", KEYS)
def test_every_path_answers_what_predict_answers(matrix, key):
    case = matrix[key]
    task, records, expected = case["task"], case["records"], case["rows"]
    assert len(expected) == len(next(iter(case["texts"].values())))

    # SavedModel serving_default, in a fresh process without bert_tf
    fresh = case["fresh"]
    served = prefixed(fresh, "serving_default/")
    assert_rows_equal(task.rows(records, served), expected, 1e-5, f"{key} serving_default")
    # serve_ids / serve_examples: the task's windows in, its decoder on the outputs
    for signature in ("serve_ids", "serve_examples"):
        raw = {k: v for k, v in prefixed(fresh, signature + "/").items()}
        assert_rows_equal(task.rows(records, decoded_from_ids(case, raw)), expected, 1e-5,
                          f"{key} {signature}")
    # gRPC loopback, serving_default
    with LoopbackPredictionServer(case["version_dir"], model_name="m") as server:
        response = grpc_predict(server.address, predict_request("m", case["texts"]))
    grpc_rows = task.rows(records, decode_strings({k: np.asarray(v) for k, v in response.items()}))
    assert_rows_equal(grpc_rows, expected, 1e-5, f"{key} gRPC")
    # TFLite float32
    lite = TFLiteTaskRunner(case["tflite"], task)
    assert (lite.text_runner is not None) == task.lite_serving
    assert lite.lengths == (8, 16, SEQUENCE_LENGTH)
    assert_rows_equal(task.rows(records, lite(case["texts"])), expected, 1e-4, f"{key} TFLite")
    # The inputs (or windows) ran at more than one length: short ones did not pay for 32.
    assert len(lite.lengths_used) >= 2 and SEQUENCE_LENGTH in lite.lengths_used, lite.lengths_used


def test_inputs_exercise_windows_and_truncation(matrix):
    """The matrix is only as good as its inputs: some texts overflow the sequence length, some
    QA contexts and NER texts span several windows, and answers are not all empty."""
    for v in ("uncased", "cased"):
        for name in ("ner", "squad"):
            case = matrix[f"{name}-{v}"]
            windows = int(case["features"]["input_ids"].shape[0])
            rows = len(next(iter(case["texts"].values())))
            assert windows > rows, (name, v, windows, rows)
        classify = matrix[f"classify-{v}"]
        lengths = classify["task"].tokenizer.tokenize(tf.constant(TEXTS)).merge_dims(1, 2)
        assert max(lengths.row_lengths().numpy()) > SEQUENCE_LENGTH - 2
        assert any(row["answer"] for row in matrix[f"squad-{v}"]["rows"])
        assert any(row["entities"] for row in matrix[f"ner-{v}"]["rows"])


def test_pair_setting_from_finetune_reaches_the_export(matrix):
    """The bug this guards: a pair classifier exported with the plain command served single
    texts. The exported serving_default must take text and text_pair."""
    loaded = tf.saved_model.load(matrix["classify_pair-uncased"]["version_dir"])
    signature = loaded.signatures["serving_default"]
    assert sorted(signature.structured_input_signature[1]) == ["text", "text_pair"]
