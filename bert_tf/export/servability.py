"""Can stock TF Serving run this SavedModel? Checked op by op, in every function of the graph.

A stock `tensorflow_model_server` links TensorFlow's full op library plus tensorflow-text's op
library (`@org_tensorflow_text//tensorflow_text:ops_lib` in tensorflow_serving/model_servers/BUILD,
`SUPPORTED_TENSORFLOW_OPS`). So an op is servable if it is a core TensorFlow op or one of the
tensorflow-text ops below. The allow-list for tensorflow-text is narrowed to the ops this package
emits, each for a stated reason; any other custom op (or a tensorflow-text op we did not mean to
use) is reported, so a change that pulls in something unexpected fails the check.

Core ops: the op definitions registered by `tensorflow` itself, read from `tf.raw_ops`, which is
generated from TensorFlow's own op registry (tensorflow-text's ops never appear there).
"""

from __future__ import annotations

import os

import tensorflow as tf

from bert_tf import fileio

# tensorflow-text ops used by bert_tf's tokenizer, and why:
TF_TEXT_OPS = {
    # exact BERT normalization (BertTokenizer, tflite_compatible=False)
    "RegexSplitWithOffsets": "splits words on whitespace/punctuation/CJK with byte offsets",
    "NormalizeUTF8": "NFD before accent stripping for uncased vocabularies",
    "NormalizeUTF8WithOffsetsMap": "NFD variant tensorflow-text may choose for offsets",
    # WordPiece (both paths)
    "FastWordpieceTokenizeWithOffsets": "WordPiece: longest match first, ## continuations",
    # FastBertTokenizer: printable-ASCII rows of the exact path, and every row with
    # tflite_compatible=True
    "FastBertNormalize": "lowercase + NFD + accent strip in one op (ASCII rows, TFLite path)",
}


def core_ops() -> frozenset:
    return frozenset(name for name in dir(tf.raw_ops) if not name.startswith("_"))


def allowed_ops() -> frozenset:
    return core_ops() | frozenset(TF_TEXT_OPS)


def graph_op_types(saved_model_dir: str) -> set:
    """Every op type in the SavedModel: all meta graphs, their main graph and every library
    function (signatures, tf.functions, tokenizer internals), read from saved_model.pb."""
    from tensorflow.core.protobuf import saved_model_pb2
    path = os.path.join(os.fspath(saved_model_dir), "saved_model.pb")
    if not fileio.isfile(path):
        raise FileNotFoundError(f"{saved_model_dir} is not a SavedModel (no saved_model.pb)")
    proto = saved_model_pb2.SavedModel()
    with fileio.open(path, "rb") as f:
        proto.ParseFromString(f.read())
    ops = set()
    for meta_graph in proto.meta_graphs:
        graph = meta_graph.graph_def
        ops.update(node.op for node in graph.node)
        for function in graph.library.function:
            ops.update(node.op for node in function.node_def)
    # Calls to library functions appear as nodes whose op is the function's name: not ops.
    function_names = {f.signature.name for mg in proto.meta_graphs for f in mg.graph_def.library.function}
    return ops - function_names


def servability_report(saved_model_dir: str) -> list:
    """Sorted op types in the SavedModel that stock TF Serving does not have; [] = servable."""
    return sorted(graph_op_types(saved_model_dir) - allowed_ops())
