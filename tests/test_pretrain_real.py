"""Pre-training from scratch on a real corpus (Wikipedia articles shipped in gensim 4.4.0's wheel):
the training loss falls well below its start and held-out masked-LM accuracy beats the unigram
baseline (always predicting the most frequent masked token of the training data).

Recipe: peak learning rate 2e-3 with a short warmup, low enough for a post-LN tiny BERT to leave
the unigram plateau (predicting "the" everywhere) and learn to use the context; the rates tried
are in docs/results.md.
"""

import collections
import os
import time

import numpy as np
import pytest
import tensorflow as tf

from bert_tf import BertConfig
from bert_tf.training.pretraining import PretrainingConfig, run_pretraining

SEQ, PREDICTIONS = 64, 10
VOCAB_PIECES = 3000


def _small_vocab(texts, vocab_file, path):
    """The real bert-base-uncased vocabulary cut to its VOCAB_PIECES pieces most used by `texts`
    (special tokens first): a tiny model learns a 3k-way masked LM in CPU minutes; words needing
    a dropped piece become [UNK], as with any vocabulary."""
    from bert_tf.data.documents import split_sentences, tokenize_documents, wordpiece_fn
    documents = [split_sentences(text) for text in texts]
    counts = collections.Counter(piece for document in tokenize_documents(documents, wordpiece_fn(vocab_file))
                                 for sentence in document for piece in sentence)
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    pieces = specials + [p for p, _ in counts.most_common() if p not in specials][:VOCAB_PIECES]
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(pieces) + "\n")
    return path, len(pieces)


def _records(directory, texts, vocab_file, seed):
    from bert_tf.data.documents import write_documents
    from bert_tf.data.pretraining import PretrainingOptions, create_pretraining_data
    corpus = os.path.join(os.path.dirname(directory), os.path.basename(directory) + ".txt")
    write_documents(texts, corpus)
    create_pretraining_data([corpus], vocab_file, directory,
                            PretrainingOptions(max_seq_length=SEQ, max_predictions_per_seq=PREDICTIONS,
                                               dupe_factor=2, random_seed=seed),
                            num_workers=1, show_progress=False)
    return os.path.join(directory, "*.tfrecord")


def _masked_targets(pattern):
    from bert_tf.data.tfrecords import load_pretraining_dataset
    dataset = load_pretraining_dataset(pattern, 256, SEQ, PREDICTIONS, shuffle=False, repeat=False,
                                       drop_remainder=False)
    return dataset


STEPS, BATCH, LEARNING_RATE, WARMUP = 1000, 32, 2e-3, 100


@pytest.mark.slow
def test_pretraining_from_scratch_on_wikipedia(tmp_path, minilm_vocab):
    from bert_tf.data.corpora import wikipedia_articles
    from bert_tf.models import BertPretrainer

    articles = [text for _, text in wikipedia_articles()]
    held_out = articles[::10]                       # every 10th article is never trained on
    train = [a for i, a in enumerate(articles) if i % 10]
    vocab_file, vocab_size = _small_vocab(train, minilm_vocab, str(tmp_path / "vocab.txt"))
    train_pattern = _records(str(tmp_path / "train"), train, vocab_file, seed=1)
    eval_pattern = _records(str(tmp_path / "eval"), held_out, vocab_file, seed=2)

    # Unigram baseline: the most frequent masked token id of the training data, always.
    counts = collections.Counter()
    for batch in _masked_targets(train_pattern):
        ids, weights = batch["masked_lm_ids"].numpy(), batch["masked_lm_weights"].numpy()
        counts.update(ids[weights > 0].tolist())
    most_frequent = counts.most_common(1)[0][0]

    config = BertConfig(vocab_size=vocab_size, hidden_size=64, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=128, max_position_embeddings=SEQ,
                        hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    config_path = str(tmp_path / "bert_config.json")
    config.to_json_file(config_path)
    out = str(tmp_path / "out")
    started = time.perf_counter()
    first = run_pretraining(PretrainingConfig(
        config_path, train_pattern, out, total_steps=STEPS, batch_size=BATCH,
        learning_rate=LEARNING_RATE, warmup_steps=WARMUP, log_every=10, checkpoint_every=STEPS,
        strategy="one_device", seed=1, progress=False))
    seconds = time.perf_counter() - started

    # Held-out MLM accuracy over every real prediction, and the baseline on the same predictions.
    model = BertPretrainer.from_pretrained(os.path.join(out, "pretrained"))
    correct = baseline = total = 0.0
    for batch in _masked_targets(eval_pattern):
        inputs = {k: batch[k] for k in ("input_ids", "token_type_ids", "attention_mask",
                                        "masked_lm_positions")}
        predicted = np.argmax(model(inputs, training=False)["mlm_logits"].numpy(), axis=-1)
        ids, weights = batch["masked_lm_ids"].numpy(), batch["masked_lm_weights"].numpy()
        correct += float(((predicted == ids) * weights).sum())
        baseline += float(((ids == most_frequent) * weights).sum())
        total += float(weights.sum())
    accuracy, baseline = correct / total, baseline / total

    events = tf.io.gfile.glob(os.path.join(out, "tensorboard", "events.*"))
    losses = [tf.make_ndarray(v.tensor) for e in tf.compat.v1.train.summary_iterator(events[0])
              for v in e.summary.value if v.tag == "train/loss"]
    start_loss, final_loss = float(losses[0]), float(np.mean(losses[-3:]))
    print(f"\nWikipedia pre-training, {STEPS} steps x {BATCH} (lr {LEARNING_RATE}) in {seconds:.0f} s: "
          f"train loss (MLM + NSP, mean of first 10 / last 30 steps) {start_loss:.3f} -> {final_loss:.3f}; "
          f"held-out MLM accuracy {accuracy:.4f} vs unigram baseline {baseline:.4f} "
          f"(token id {most_frequent}) over {int(total)} predictions")
    assert first.step == STEPS
    assert final_loss <= 0.8 * start_loss, (start_loss, final_loss)
    # Well clear of the plateau: half as accurate again as always guessing the commonest token.
    assert accuracy >= 1.5 * baseline and accuracy > baseline + 0.02, (accuracy, baseline)


def test_masked_lm_head_reads_the_masked_positions(tmp_path):
    """Mechanics, apart from any plateau: when the token at each masked position is left in the
    input, the pretrainer learns to output it (chance is 1/45) on fresh random sequences — which
    only works if the gathered positions, the labels and the tied projection line up (shifting
    the labels by one position keeps it near chance)."""
    from bert_tf.models import BertEncoder, BertPretrainer, pretraining_losses
    from bert_tf.training.distribution import create_strategy
    from bert_tf.training.optimization import create_optimizer
    from bert_tf.training.trainer import Trainer, TrainingOptions

    vocab, seq, predictions, batch, steps = 50, 16, 4, 32, 200
    rng = np.random.default_rng(0)

    def examples(n):
        ids = rng.integers(5, vocab, size=(n, seq)).astype(np.int32)
        ids[:, 0] = 2
        positions = np.sort(np.stack([rng.choice(np.arange(1, seq), predictions, replace=False)
                                      for _ in range(n)]), axis=1).astype(np.int32)
        labels = np.take_along_axis(ids, positions, axis=1)
        return {"input_ids": ids, "token_type_ids": np.zeros_like(ids),
                "attention_mask": np.ones_like(ids), "masked_lm_positions": positions,
                "masked_lm_ids": labels, "masked_lm_weights": np.ones(positions.shape, np.float32),
                "next_sentence_labels": np.zeros(n, np.int32)}

    train = tf.data.Dataset.from_tensor_slices(examples(steps * batch)).batch(batch)
    config = BertConfig(vocab_size=vocab, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=seq,
                        hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    strategy = create_strategy("one_device")
    with strategy.scope():
        model = BertPretrainer(BertEncoder(config))
        optimizer = create_optimizer("adamw", 3e-3, steps, 20)
    trainer = Trainer(model, pretraining_losses, optimizer, strategy, str(tmp_path),
                      TrainingOptions(total_steps=steps, log_every=steps, checkpoint_every=steps,
                                      progress=False))
    trainer.fit(train)
    held_out = examples(256)
    inputs = {k: held_out[k] for k in ("input_ids", "token_type_ids", "attention_mask",
                                       "masked_lm_positions")}
    predicted = np.argmax(model(inputs, training=False)["mlm_logits"].numpy(), axis=-1)
    accuracy = float((predicted == held_out["masked_lm_ids"]).mean())
    assert accuracy > 0.9, accuracy
