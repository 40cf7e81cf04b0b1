"""BertTokenizer outside Python tokenization: an exported SavedModel reloaded in a fresh process
that imports only tensorflow and tensorflow_text, and a TFLite model (builtin ops + the
tensorflow-text custom ops registrar) giving the same ids."""

import json
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from bert_tf.data import fetch
from bert_tf.text import BertTokenizer

SENTENCES = ["Hello, my dog is cute", "Naïve café owners in 中国 said: “It’s fine”!", "", "x" * 300]
SECONDS = ["How are you?", "a b c d e f g h i j k l m n o p q r s t u v w x y z", "short", "b"]


class TokenizerModule(tf.Module):
    def __init__(self, tokenizer):
        super().__init__()
        self.tokenizer = tokenizer

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
    def single(self, text):
        return self.tokenizer(text)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)] * 2)
    def pair(self, first, second):
        return self.tokenizer((first, second))


@pytest.fixture(scope="module")
def vocab_path():
    return fetch.minilm_vocab()


@pytest.mark.slow
def test_saved_model_in_fresh_process(vocab_path, tmp_path):
    tokenizer = BertTokenizer.from_vocab_file(vocab_path, sequence_length=32)
    module = TokenizerModule(tokenizer)
    export_dir = str(tmp_path / "tokenizer_savedmodel")
    tf.saved_model.save(module, export_dir, signatures={
        "serving_default": module.single.get_concrete_function(),
        "pair": module.pair.get_concrete_function()})
    script = f"""
import json, sys
import tensorflow as tf
import tensorflow_text  # registers the ops; nothing from bert_tf
assert "bert_tf" not in sys.modules
model = tf.saved_model.load({export_dir!r})
single = model.signatures["serving_default"](text=tf.constant({SENTENCES!r}))
pair = model.signatures["pair"](first=tf.constant({SENTENCES!r}), second=tf.constant({SECONDS!r}))
print(json.dumps({{"single": single["input_ids"].numpy().tolist(),
                  "pair": pair["input_ids"].numpy().tolist(),
                  "types": pair["token_type_ids"].numpy().tolist()}}))
"""
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    np.testing.assert_array_equal(result["single"], tokenizer(SENTENCES)["input_ids"].numpy())
    expected_pair = tokenizer((tf.constant(SENTENCES), tf.constant(SECONDS)))
    np.testing.assert_array_equal(result["pair"], expected_pair["input_ids"].numpy())
    np.testing.assert_array_equal(result["types"], expected_pair["token_type_ids"].numpy())
    assert result["single"][0][:8] == [101, 7592, 1010, 2026, 3899, 2003, 10140, 102]


@pytest.mark.slow
def test_tflite_model_same_ids(vocab_path):
    import tensorflow_text as tf_text
    from ai_edge_litert import interpreter as litert

    tokenizer = BertTokenizer.from_vocab_file(vocab_path, sequence_length=32,
                                              tflite_compatible=True)
    module = TokenizerModule(tokenizer)
    converter = tf.lite.TFLiteConverter.from_concrete_functions(
        [module.single.get_concrete_function(), module.pair.get_concrete_function()], module)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]  # no Flex
    converter.allow_custom_ops = True
    flatbuffer = converter.convert()
    interpreter = litert.InterpreterWithCustomOps(
        custom_op_registerers=tf_text.tflite_registrar.SELECT_TFTEXT_OPS, model_content=flatbuffer)
    single = interpreter.get_signature_runner("single")(text=np.array(SENTENCES))
    pair = interpreter.get_signature_runner("pair")(first=np.array(SENTENCES),
                                                    second=np.array(SECONDS))
    expected = tokenizer(tf.constant(SENTENCES))
    expected_pair = tokenizer((tf.constant(SENTENCES), tf.constant(SECONDS)))
    for name in ("input_ids", "token_type_ids", "attention_mask"):
        np.testing.assert_array_equal(single[name], expected[name].numpy())
        np.testing.assert_array_equal(pair[name], expected_pair[name].numpy())
    assert single["input_ids"][0][:8].tolist() == [101, 7592, 1010, 2026, 3899, 2003, 10140, 102]
    # These sentences have no compatibility characters, so the exact path agrees too.
    exact = BertTokenizer.from_vocab_file(vocab_path, sequence_length=32)
    np.testing.assert_array_equal(single["input_ids"], exact(tf.constant(SENTENCES))["input_ids"])
