"""Up-front flag checks (issue 17): each bad flag is one clear line naming the flag, exit 2,
before any work (nothing written under --out), never a traceback; the system's refusals (a
directory where a file is expected) are reported the same way.

Table-driven: (name, argv with placeholders, words the one error line must hold)."""

import io
import os
import sys

import pytest

import bert_tf.cli
from tests.harness import write_tiny_classification, write_tiny_init
from tests.reliability.cases import require_words

CLEAR = "CLEAR"


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("flags")
    init = write_tiny_init(root / "init", max_position_embeddings=32)
    big_vocab = str(root / "big_vocab.txt")
    with open(os.path.join(init, "vocab.txt"), encoding="utf-8") as f:
        tokens = f.read().split()
    with open(big_vocab, "w", encoding="utf-8") as f:
        f.write("\n".join(tokens + ["extra1", "extra2"]) + "\n")
    small_vocab = str(root / "small_vocab.txt")
    with open(small_vocab, "w", encoding="utf-8") as f:
        f.write("\n".join(tokens[:-3]) + "\n")
    one_label = str(root / "one_label.csv")
    with open(one_label, "w", encoding="utf-8") as f:
        f.write("text,label\n" + "".join(f"review {i},negative\n" for i in range(8)))
    empty = str(root / "empty.csv")
    with open(empty, "w", encoding="utf-8") as f:
        f.write("text,label\n")
    a_file = str(root / "a_file")
    with open(a_file, "w") as f:
        f.write("not a directory")
    from bert_tf.models import BertClassifier, load_encoder
    from bert_tf.tasks import model_dir
    classifier = str(root / "classifier")   # a finished classify model directory
    os.makedirs(classifier)
    model_dir.save_model_atomic(BertClassifier(load_encoder(init), 2), classifier)
    model_dir.write_labels(classifier, ["negative", "positive"])
    model_dir.write_vocab(classifier, tokens)
    model_dir.write_task(classifier, {"task": "classify", "max_length": 16, "lowercase": True,
                                      "task_settings": {}})
    import json
    with open(os.path.join(init, "config.json"), encoding="utf-8") as f:
        odd = json.load(f)
    odd.update(hidden_size=36, num_attention_heads=4)      # head size 9
    odd_heads = str(root / "odd_heads_config.json")
    with open(odd_heads, "w", encoding="utf-8") as f:
        json.dump(odd, f)
    pairs = str(root / "pairs.csv")
    with open(pairs, "w", encoding="utf-8") as f:
        f.write("anchor,positive\n" + "".join(f"good {i},nice {i}\n" for i in range(8)))
    return {"INIT": init, "TRAIN": write_tiny_classification(root / "train.csv"), "PAIRS": pairs,
            "CLASSIFIER": classifier,
            "BIG_VOCAB": big_vocab, "SMALL_VOCAB": small_vocab, "ONE_LABEL": one_label,
            "A_FILE": a_file, "A_DIR": str(root), "EMPTY": empty,
            "TEACHER_TRAIN": write_tiny_classification(root / "teacher_train.csv",
                                                       labels=("negative", "positive")),
            "CONFIG": os.path.join(init, "config.json"), "VOCAB": os.path.join(init, "vocab.txt"),
            "ODD_HEADS_CONFIG": odd_heads}


def finetune(*extra):
    return ["finetune", "classify", "--init", "INIT", "--train", "TRAIN", "--out", "OUT",
            "--max-length", 16, "--batch-size", 8, "--epochs", 1, "--strategy", "one_device",
            "--no-progress", *extra]


def distill(*extra):
    return ["distill", "--teacher", "CLASSIFIER", "--student-layers", 1, "--train", "TEACHER_TRAIN",
            "--out", "OUT", "--batch-size", 8, "--epochs", 1, "--strategy", "one_device",
            "--no-progress", *extra]


def pretrain(*extra):
    return ["pretrain", "--config", "CONFIG", "--text", "TRAIN", "--vocab", "VOCAB", "--out",
            "OUT", "--steps", 1, "--batch-size", 2, "--strategy", "one_device", "--no-progress",
            *extra]


# (name, argv, stdin bytes or None, words in the error)
CASES = [
    ("finetune --epochs nan", finetune("--epochs", "nan"), None, ["--epochs", "nan"]),
    ("finetune --epochs inf", finetune("--epochs", "inf"), None, ["--epochs", "inf"]),
    ("finetune --epochs 0", finetune("--epochs", 0), None, ["--epochs", "positive"]),
    ("finetune --epochs -1", finetune("--epochs", -1), None, ["--epochs", "positive"]),
    ("finetune --learning-rate nan", finetune("--learning-rate", "nan"), None,
     ["--learning-rate", "nan"]),
    ("finetune --learning-rate 0", finetune("--learning-rate", 0), None,
     ["--learning-rate", "positive"]),
    ("finetune --learning-rate -1e-5", finetune("--learning-rate=-1e-5"), None,
     ["--learning-rate", "positive"]),
    ("finetune --learning-rate inf", finetune("--learning-rate", "inf"), None,
     ["--learning-rate", "finite"]),
    ("finetune --weight-decay nan", finetune("--weight-decay", "nan"), None, ["--weight-decay"]),
    ("finetune --warmup nan", finetune("--warmup", "nan"), None, ["--warmup"]),
    ("finetune --batch-size 0", finetune("--batch-size", 0), None, ["--batch-size"]),
    ("finetune --out is a file", finetune("--out", "A_FILE"), None,
     ["--out", "a_file", "not a directory"]),
    ("finetune --train is a directory", finetune("--train", "A_DIR"), None,
     ["--train", "is a directory"]),
    ("finetune --max-length over the model's positions", finetune("--max-length", 64), None,
     ["--max-length 64", "32 positions", "max_position_embeddings"]),
    ("finetune vocab larger than the model's", finetune("--vocab", "BIG_VOCAB"), None,
     ["--vocab", "big_vocab.txt", "23 tokens", "vocab_size 21"]),
    ("finetune vocab smaller than the model's", finetune("--vocab", "SMALL_VOCAB"), None,
     ["--vocab", "small_vocab.txt", "18 tokens", "vocab_size 21"]),
    ("finetune classify on a file with one label", finetune("--train", "ONE_LABEL"), None,
     ["one_label.csv", "1 distinct label", "at least 2", "finetune regress"]),
    ("distill --temperature 0", distill("--temperature", 0), None,
     ["--temperature", "positive"]),
    ("distill --temperature nan", distill("--temperature", "nan"), None, ["--temperature"]),
    ("distill --alpha 1.5", distill("--alpha", 1.5), None, ["--alpha", "[0, 1]"]),
    ("distill --student-layers as many as the teacher's", distill("--student-layers", 2), None,
     ["--student-layers", "2 layers", "2-layer teacher"]),
    ("distill --teacher that is no model directory", distill("--teacher", "A_DIR"), None,
     ["--teacher", "task.json"]),
    ("distill --train of another task", distill("--train", "PAIRS"), None,
     ["--train", "pairs.csv", "'classify' teacher"]),
    ("distill --train with labels the teacher does not know", distill("--train", "TRAIN"),
     None, ["--train", "train.csv", "'neg'", "known labels"]),
    ("distill --unlabeled that is empty", distill("--unlabeled", "EMPTY"), None,
     ["--unlabeled", "empty.csv", "no records"]),
    ("pretrain --learning-rate nan", pretrain("--learning-rate", "nan"), None,
     ["--learning-rate", "nan"]),
    ("pretrain --weight-decay -1", pretrain("--weight-decay", -1), None, ["--weight-decay"]),
    ("pretrain neighbour attention init with an odd head size",
     pretrain("--config", "ODD_HEADS_CONFIG", "--max-seq-length", 16, "--attention-init",
              "neighbours"), None,
     ["--attention-init neighbours", "even head size", "36", "random"]),
    ("pretrain --out is a file", pretrain("--out", "A_FILE"), None,
     ["--out", "not a directory"]),
    ("pretrain --data matching no file", ["pretrain", "--config", "CONFIG", "--data",
                                          "A_DIR/none*.tfrecord", "--out", "OUT", "--steps", 1,
                                          "--max-seq-length", 16, "--max-predictions-per-seq", 3,
                                          "--strategy", "one_device"], None,
     ["no training files match", "none*.tfrecord"]),
    ("finetune embed --scale 0", ["finetune", "embed", "--init", "INIT", "--train", "PAIRS",
                                  "--out", "OUT", "--scale", 0, "--no-progress"], None,
     ["scale", "positive"]),
    ("finetune embed on a file without a positive column", [
        "finetune", "embed", "--init", "INIT", "--train", "TRAIN", "--out", "OUT",
        "--no-progress"], None, ["train.csv", "line 2", "missing", "'anchor'"]),
    ("embed --output with another extension", ["embed", "--model", "INIT", "--data", "TRAIN",
                                               "--output", "A_DIR/v.csv"], None,
     ["--output", "v.csv", ".npy or .jsonl"]),
    ("embed with a model of another task", ["embed", "--model", "CLASSIFIER", "--data",
                                            "TRAIN", "--output", "A_DIR/v.npy"], None,
     ["--model", "'classify' model", "embedding model"]),
    ("search -k 0", ["search", "--model", "INIT", "--index", "TRAIN", "--query", "x", "-k", 0],
     None, ["-k", "positive"]),
    ("search with an empty query", ["search", "--model", "INIT", "--index", "TRAIN", "--query",
                                    " "], None, ["--query", "empty"]),
    ("predict --batch-size 0", ["predict", "--model", "OUT", "--batch-size", 0], b"great\n",
     ["--batch-size", "at least 1"]),
    ("predict invalid UTF-8 on stdin", ["predict", "--model", "OUT"], b"good movie\nbad \xff\n",
     ["stdin line 2", "not valid UTF-8", "0xff"]),
    ("predict --format lines on a directory", ["predict", "--model", "OUT", "--data", "A_DIR",
                                               "--format", "lines"], None,
     ["Is a directory", "flags"]),
]


@pytest.mark.parametrize("name, argv, stdin, words", CASES,
                         ids=["CLEAR-" + c[0] for c in CASES])
def test_bad_flag_is_one_clear_line_before_any_work(files, tmp_path, capsys, monkeypatch, name,
                                                    argv, stdin, words):
    out = str(tmp_path / "out")
    paths = {**files, "OUT": out}
    argv = [paths.get(str(a), str(a)).replace("A_DIR", files["A_DIR"]) for a in argv]
    if stdin is not None:
        monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(stdin), encoding="utf-8"))
    capsys.readouterr()
    assert bert_tf.cli.main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert err.startswith(f"bert-tf {argv[0]}: error: "), err
    require_words(err, words)
    assert not os.path.exists(out)       # nothing written: the checks come before any work
