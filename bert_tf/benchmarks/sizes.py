"""How big each measure is: `FULL` (the numbers we report) and `TINY` (the smoke test)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from bert_tf.config import BertConfig


def _p2_base():
    return BertConfig.preset("base", hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)


def _p4_config():
    # tanh GELU (google-research/bert's, HF "gelu_new"): KerasHub's BertBackbone computes only that
    # one, so all three peers train the same function (exact erf GELU is slower; docs/results.md).
    return BertConfig(vocab_size=30522, hidden_size=256, num_hidden_layers=4, num_attention_heads=4,
                      intermediate_size=1024, hidden_act="gelu_new")


@dataclass(frozen=True)
class Sizes:
    name: str
    warmups: int = 1
    repeats: int = 5
    # P1 / P3: the sentiment classifier
    real_weights: bool = True            # MiniLM-L6 real weights (else a tiny random encoder)
    tiny_config: BertConfig | None = None
    probe_sentences: int = 1024          # training snippets the linear head is fitted on
    p1_batch: int = 32
    p1_batches: int = 6                  # batches per timed repetition
    p1_check_sentences: int | None = None  # label agreement check (None: the whole test split)
    # P2: fixed-shape encoder
    p2_config: BertConfig = field(default_factory=_p2_base)
    p2_batches: tuple = (1, 8, 32)
    p2_seq: int = 128
    p2_calls: dict = field(default_factory=lambda: {1: 4, 8: 1, 32: 1})  # calls per repetition
    matmul_shapes: tuple = ((2048, 2048, 2048), (4096, 768, 3072), (4096, 3072, 768))  # [m,k]x[k,n]
    # P3: TFLite at batch 1
    p3_variants: tuple = ("float32", "float16", "dynamic_int8", "full_int8")
    p3_latency_sentences: int = 48
    p3_accuracy_sentences: int | None = None  # None: the whole test split
    p3_calibration_sentences: int = 64
    # P4: training step
    p4_config: BertConfig = field(default_factory=_p4_config)
    p4_batch: int = 16
    p4_seq: int = 128
    p4_steps: int = 3                    # steps per timed repetition
    # P5: tokenizer
    p5_sentences: int = 4096
    p5_seq: int = 128
    # P6: sentence embeddings
    p6_batch: int = 32
    p6_batches: int = 16                 # batches per timed repetition
    # P7: fine-tuning time to accuracy (MiniLM-L6 real weights; tiny: a random tiny encoder).
    # Per task, FinetuneOptions fields that differ from `bert-tf finetune`'s defaults, plus
    # train_limit / eval_limit (examples kept; None: the whole split). WNUT NER needs 8 epochs at
    # lr 5e-5 to leave the all-"O" answer on its ~3,400 tweets (docs/results.md).
    p7_tasks: dict = field(default_factory=lambda: {"sentiment": {"epochs": 2.0},
                                                    "ner": {"epochs": 8.0}})
    p7_repeats: int = 1                  # runs per side (alternating which side goes first)


FULL = Sizes("full")

_TINY_ENCODER = BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=1,
                           num_attention_heads=2, intermediate_size=64)
TINY = Sizes(
    "tiny", warmups=1, repeats=2, real_weights=False, tiny_config=_TINY_ENCODER,
    probe_sentences=64, p1_batch=8, p1_batches=1, p1_check_sentences=32,
    p2_config=replace(_TINY_ENCODER, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0),
    p2_batches=(2,), p2_seq=16, p2_calls={2: 1}, matmul_shapes=((128, 128, 128), (64, 32, 128)),
    p3_variants=("float32", "dynamic_int8"), p3_latency_sentences=4, p3_accuracy_sentences=16,
    p3_calibration_sentences=4,
    p4_config=_TINY_ENCODER, p4_batch=2, p4_seq=16, p4_steps=1,
    p5_sentences=64, p5_seq=32, p6_batch=8, p6_batches=1,
    p7_tasks={"sentiment": {"epochs": 1.0, "max_length": 32, "train_limit": 32, "eval_limit": 16},
              "ner": {"epochs": 1.0, "max_length": 32, "train_limit": 16, "eval_limit": 8}})

SIZES = {"full": FULL, "tiny": TINY}
