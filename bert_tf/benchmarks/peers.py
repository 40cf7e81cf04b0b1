"""The peers, built with the same shapes as the bert_tf model they are compared with.

Each builder imports its framework only when called, so the suite starts fast and a missing
optional peer costs one clear skip line instead of an import error.

| peer | what is timed |
|---|---|
| hf torch | transformers `BertModel` / `BertForSequenceClassification` (sdpa attention), eval mode, `torch.inference_mode()`; its Rust `BertTokenizerFast` |
| keras_hub xla | KerasHub `BertBackbone` / `BertTextClassifier` in `tf.function(jit_compile=True)`; its `BertTextClassifierPreprocessor` |
| model_garden xla | tf-models-official `BertEncoderV2` (tf_keras) in `tf.function(jit_compile=True)` |
| onnxruntime | the transformers model (eager attention) exported by torch.onnx's dynamo exporter with dynamic batch and length, run by an ONNX Runtime CPU session with all its graph optimizations; the HF fast tokenizer in front |
"""

from __future__ import annotations

from bert_tf.config import BertConfig


def hf_config(config: BertConfig, num_labels: int = 2):
    import transformers
    return transformers.BertConfig(**config.to_hf_dict(), num_labels=num_labels,
                                   attn_implementation="sdpa")


def hf_encoder(config: BertConfig):
    import torch
    import transformers
    torch.manual_seed(0)
    return transformers.BertModel(hf_config(config)).eval()


def hf_classifier(config: BertConfig, num_labels: int = 2):
    import torch
    import transformers
    torch.manual_seed(0)
    return transformers.BertForSequenceClassification(hf_config(config, num_labels))


def hf_tokenizer(vocab_path: str):
    import transformers
    # transformers 5.x ignores `vocab_file=` (a 5-token vocabulary, every word [UNK]); the path
    # must be positional. Callers check a reference sentence's ids.
    return transformers.BertTokenizerFast(vocab_path, do_lower_case=True)


def keras_hub_backbone(config: BertConfig):
    import keras_hub
    return keras_hub.models.BertBackbone(
        vocabulary_size=config.vocab_size, num_layers=config.num_hidden_layers,
        num_heads=config.num_attention_heads, hidden_dim=config.hidden_size,
        intermediate_dim=config.intermediate_size, dropout=config.hidden_dropout_prob,
        max_sequence_length=config.max_position_embeddings, num_segments=config.type_vocab_size)


def keras_hub_preprocessor(vocab_path: str, sequence_length: int):
    import keras_hub
    tokenizer = keras_hub.models.BertTokenizer(vocabulary=vocab_path, lowercase=True)
    return keras_hub.models.BertTextClassifierPreprocessor(tokenizer, sequence_length=sequence_length)


def model_garden_encoder(config: BertConfig):
    from official.nlp.modeling.networks import BertEncoderV2
    return BertEncoderV2(
        vocab_size=config.vocab_size, hidden_size=config.hidden_size,
        num_layers=config.num_hidden_layers, num_attention_heads=config.num_attention_heads,
        max_sequence_length=config.max_position_embeddings, type_vocab_size=config.type_vocab_size,
        inner_dim=config.intermediate_size, output_dropout=config.hidden_dropout_prob,
        attention_dropout=config.attention_probs_dropout_prob)


ONNX_INPUTS = ("input_ids", "attention_mask", "token_type_ids")


def export_onnx(model, pick, path: str, max_length: int) -> str:
    """Exports a transformers BERT model (built with attn_implementation="eager": the attention
    torch.onnx translates op by op) to `path`, batch and length dynamic (1..max_length)."""
    import torch

    class Positional(torch.nn.Module):
        """Three positional int64 tensors [b, t] → one tensor: the signature torch.onnx exports."""

        def __init__(self):
            super().__init__()
            self.model = model

        def forward(self, input_ids, attention_mask, token_type_ids):
            return pick(self.model(input_ids=input_ids, attention_mask=attention_mask,
                                   token_type_ids=token_type_ids))

    wrapped = Positional().eval()
    example = tuple(torch.ones((2, 8), dtype=torch.int64) for _ in ONNX_INPUTS)
    batch = torch.export.Dim("batch", min=1, max=4096)
    length = torch.export.Dim("length", min=2, max=max_length)
    torch.onnx.export(wrapped, example, path, dynamo=True, input_names=list(ONNX_INPUTS),
                      output_names=["output"], external_data=False, verbose=False,
                      dynamic_shapes={name: {0: batch, 1: length} for name in ONNX_INPUTS})
    return path


def ort_session(path: str, threads: int):
    """An ONNX Runtime CPU session with every graph optimization on (ORT_ENABLE_ALL: its
    LayerNorm/GELU/MatMul fusions), `threads` intra-op threads like the other frameworks."""
    import onnxruntime as ort
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    return ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])


def eager_copy(model):
    """The same transformers model with eager attention (what `export_onnx` wants), same weights."""
    config = model.config.__class__.from_dict(model.config.to_dict())
    config._attn_implementation = "eager"
    copy = type(model)(config)
    copy.load_state_dict(model.state_dict())
    return copy.eval()
