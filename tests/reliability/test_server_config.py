"""Names that enter files TF Serving parses: models.config (text protobuf) is escaped for any
directory name, new exports refuse model names a server URL cannot carry, and label names must
fit labels.txt (one per line)."""

import os

import pytest

from bert_tf.export import ExportError, export_saved_model
from bert_tf.export.saved_model import check_label_names
from bert_tf.export.serving_config import models_config_text, write_server_configs
from tests.reliability.cases import Case, check, params

NAMES_IN_CONFIG = ["sentiment", "it's", 'say "hi"', "back\\slash", "new\nline", "tab\there",
                   "café", "日本語", "a b", "{brace}", "semi;colon", "#hash"]


@pytest.mark.parametrize("name", NAMES_IN_CONFIG, ids=[f"OK-config-{i}" for i in
                                                       range(len(NAMES_IN_CONFIG))])
def test_models_config_parses_back_to_the_same_names(name, tmp_path):
    """Any directory name under the root (including ones bert_tf would not create) is written as
    an escaped literal that TF Serving's parser reads back exactly."""
    from google.protobuf import text_format
    from tensorflow_serving.config import model_server_config_pb2
    os.makedirs(tmp_path / name / "1")
    os.makedirs(tmp_path / "plain" / "3")
    paths = write_server_configs(str(tmp_path))
    with open(paths["models_config"], encoding="utf-8") as f:
        config = text_format.Parse(f.read(), model_server_config_pb2.ModelServerConfig())
    entries = {c.name: c.base_path for c in config.model_config_list.config}
    assert entries == {name: f"/models/{name}", "plain": "/models/plain"}


@pytest.mark.expect("OK")
def test_models_config_text_has_one_entry_per_name():
    text = models_config_text(["a", "it's"])
    assert text.count("config {") == 2 and "'it\\'s'" in text


MODEL_NAMES = [
    Case("quote", "CLEAR", "it's", ("it's", "cannot name a TF Serving model")),
    Case("space", "CLEAR", "my model", ("my model",)),
    Case("colon", "CLEAR", "a:b", ("a:b",)),
    Case("hidden", "CLEAR", ".hidden", (".hidden",)),
    Case("newline", "CLEAR", "a\nb", ("cannot name",)),
    Case("non-ascii", "CLEAR", "café", ("café",)),
    Case("double-quote", "CLEAR", 'x"y', ("cannot name",)),
    Case("braces", "CLEAR", "{x}", ("{x}",)),
]


@pytest.mark.parametrize("case", params(MODEL_NAMES))
def test_export_refuses_unservable_model_names_before_any_work(case, tmp_path):
    # The check comes first: no model is even needed to be refused, and nothing is written.
    check(case, lambda: export_saved_model(None, tmp_path / case.inputs))
    assert os.listdir(tmp_path) == []


LABELS = [
    Case("plain", "OK", ["neg", "pos"]),
    Case("spaces-and-unicode", "OK", ["très bien", "not good", "日本"]),
    Case("quote", "OK", ["it's", 'say "x"']),
    Case("empty-tuple-regression", "OK", []),
    Case("newline", "CLEAR", ["a\nb", "c"], ("line breaks", "'a\\nb'")),
    Case("carriage-return", "CLEAR", ["a\rb"], ("line breaks",)),
    Case("empty-string", "CLEAR", ["", "x"], ("non-empty",)),
    Case("not-a-string", "CLEAR", ["a", 3], ("non-empty strings", "3")),
    Case("duplicate", "CLEAR", ["a", "b", "a"], ("differ", "'a'")),
]


@pytest.mark.parametrize("case", params(LABELS))
def test_label_names(case):
    out = check(case, lambda: check_label_names(case.inputs))
    if case.expect == "OK":
        assert out == tuple(case.inputs)
    else:
        assert isinstance(out, ExportError)
