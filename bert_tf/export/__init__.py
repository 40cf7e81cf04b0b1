"""Export for serving: a TF Serving SavedModel (raw text in, tokenizer in the graph), its
servability checks and client helpers, and TFLite conversion verified against Keras."""

from bert_tf.export.saved_model import export_saved_model, next_version
from bert_tf.export.servability import servability_report
from bert_tf.export.errors import ExportError

__all__ = ["export_saved_model", "next_version", "servability_report", "convert_tflite",
           "verify_tflite", "TFLiteTaskRunner", "ExportError"]


def __getattr__(name):
    # TFLite conversion pulls in the converter; import it only when asked for.
    if name == "convert_tflite":
        from bert_tf.export.tflite import convert_tflite
        return convert_tflite
    if name == "TFLiteTaskRunner":
        from bert_tf.export.tflite_runner import TFLiteTaskRunner
        return TFLiteTaskRunner
    if name == "verify_tflite":
        from bert_tf.export.tflite_verify import verify_tflite
        return verify_tflite
    raise AttributeError(name)
