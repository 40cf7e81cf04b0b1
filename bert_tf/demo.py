"""The main job on the embedded default, end to end: real MiniLM-L6 weights -> fine-tune sentiment
on Rotten Tomatoes -> evaluate -> export a TF Serving SavedModel and a TFLite model -> answer a few
sentences through Keras, the SavedModel and the TFLite model -> a short report.

Everything comes from pinned registry packages (no hub). Fine-tuning is bounded by examples and by
wall time (`max_train_seconds`), so the whole job fits in a few minutes on 2 CPU cores; `quick`
shrinks every stage for tests. The fine-tuned model is written in `bert-tf finetune`'s output
layout (model.keras, labels.json, vocab.txt, task.json), so `bert-tf export` reads it as is.
"""

from __future__ import annotations

import dataclasses
import os
import time

import numpy as np

from bert_tf import fileio

DEFAULT_SENTENCES = (
    "A gripping, beautifully acted film that stays with you.",
    "One of the most moving movies of the year, superbly performed.",
    "The plot is a mess and the jokes fall flat.",
    "Tedious, overlong and badly written.",
)


@dataclasses.dataclass
class DemoOptions:
    out: str = "."                  # writes OUT/demo_output/... and OUT/saved_models/sentiment/<v>
    model_dir: str | None = None    # HF/google/KerasHub dir with vocab.txt (default: MiniLM-L6)
    sequence_length: int = 64
    train_examples: int = 3200
    batch_size: int = 32
    learning_rate: float = 1e-4
    max_train_seconds: float = 180.0
    eval_examples: int | None = None  # None = the whole test split (1,282)
    tflite_quantize: str = "dynamic"
    sentences: tuple = DEFAULT_SENTENCES
    progress: bool = True

    @classmethod
    def quick(cls, **overrides):
        """A bounded run for tests: tiny training, a test-split sample, same pipeline."""
        return cls(**{**dict(sequence_length=32, train_examples=64, batch_size=16,
                             max_train_seconds=60.0, eval_examples=128, progress=False),
                      **overrides})


class _Progress:
    """tqdm bar over training steps that also stops training at the time budget."""

    def __init__(self, steps, max_seconds, enabled):
        import keras
        from tqdm.auto import tqdm

        outer = self

        class Callback(keras.callbacks.Callback):
            def on_train_begin(self, logs=None):
                outer.start = time.perf_counter()

            def on_train_batch_end(self, batch, logs=None):
                outer.steps_done += 1
                if outer.steps_done == 1:
                    # The first step traces and compiles the train step: the budget is for the
                    # training itself, so the clock starts once the graph exists.
                    outer.start = time.perf_counter()
                outer.bar.update(1)
                outer.bar.set_postfix(loss=f"{logs.get('loss', float('nan')):.3f}")
                # Stopping after the last planned step stops nothing: only a cut-short run counts.
                if outer.steps_done < steps and time.perf_counter() - outer.start > max_seconds:
                    outer.stopped_early = True
                    self.model.stop_training = True

        self.bar = tqdm(total=steps, desc="fine-tuning", unit="step", disable=not enabled)
        self.callback = Callback()
        self.steps_done, self.stopped_early, self.start = 0, False, 0.0


def finetune_sentiment(options: DemoOptions, log=print):
    """MiniLM-L6 + a fresh 2-class head, fine-tuned on Rotten Tomatoes train with Keras fit."""
    import keras
    import tensorflow as tf

    from bert_tf.data import datasets
    from bert_tf.data.fetch import minilm_dir
    from bert_tf.models import BertClassifier
    from bert_tf.text import BertTokenizer

    model_dir = options.model_dir or minilm_dir()
    vocab = os.path.join(model_dir, "vocab.txt")
    if not fileio.isfile(vocab):
        raise FileNotFoundError(f"{model_dir} has no vocab.txt for the tokenizer")
    tokenizer = BertTokenizer.from_vocab_file(vocab, lowercase=True,
                                              sequence_length=options.sequence_length)
    keras.utils.set_random_seed(0)
    model = BertClassifier.from_pretrained(model_dir, num_classes=2)
    train = datasets.rotten_tomatoes("train")
    rng = np.random.default_rng(0)
    train = [train[i] for i in rng.permutation(len(train))[:options.train_examples]]
    features = {k: np.asarray(v) for k, v in tokenizer(tf.constant([t for t, _ in train])).items()}
    labels = np.array([label for _, label in train], np.int32)
    model.compile(optimizer=keras.optimizers.AdamW(options.learning_rate, weight_decay=0.01),
                  loss={"logits": keras.losses.SparseCategoricalCrossentropy(from_logits=True)},
                  # XLA-compiling the train step costs minutes of CPU before the first step.
                  jit_compile=False)
    steps = -(-len(labels) // options.batch_size)
    progress = _Progress(steps, options.max_train_seconds, options.progress)
    log(f"Fine-tuning MiniLM-L6 on {len(labels)} Rotten Tomatoes reviews "
        f"({steps} steps of {options.batch_size}, at most {options.max_train_seconds:.0f} s)")
    start = time.perf_counter()
    model.fit(features, {"logits": labels}, batch_size=options.batch_size, epochs=1, shuffle=True,
              verbose=0, callbacks=[progress.callback])
    progress.bar.close()
    return model, tokenizer, {"train_examples": len(labels), "steps": progress.steps_done,
                              "planned_steps": steps, "stopped_at_time_budget": progress.stopped_early,
                              "train_seconds": time.perf_counter() - start}


def save_finetuned(model, tokenizer, directory):
    """`bert-tf finetune`'s model directory, through the one module that owns its contract."""
    from bert_tf.data.datasets import ROTTEN_TOMATOES_LABELS
    from bert_tf.tasks import model_dir
    fileio.makedirs(directory, exist_ok=True)
    model_dir.save_model_atomic(model, directory)
    model_dir.write_labels(directory, ROTTEN_TOMATOES_LABELS)
    model_dir.write_vocab(directory, tokenizer.get_vocabulary())
    model_dir.write_task(directory, {
        "task": "classify", "max_length": tokenizer.sequence_length,
        "lowercase": tokenizer.lowercase, "dataset": "rotten_tomatoes",
        "task_settings": {"text_column": "text", "text_pair_column": None,
                          "label_column": "label"}})
    return directory


def evaluate(model, tokenizer, examples, batch_size=64):
    import tensorflow as tf
    probabilities = []
    for i in range(0, len(examples), batch_size):
        chunk = [t for t, _ in examples[i:i + batch_size]]
        logits = model(tokenizer(tf.constant(chunk)), training=False)["logits"]
        probabilities.append(np.asarray(tf.nn.softmax(logits, axis=-1)))
    probabilities = np.concatenate(probabilities)
    gold = np.array([label for _, label in examples])
    return float(np.mean(probabilities.argmax(-1) == gold)), probabilities


def _dir_bytes(path):
    return sum(fileio.getsize(fileio.join(path, f)) for f in fileio.walk_files(path))


def run_demo(options: DemoOptions | None = None, log=print) -> dict:
    """Runs the whole pipeline; returns the numbers and paths the report shows."""
    import tensorflow as tf

    from bert_tf.data import datasets
    from bert_tf.export import export_saved_model, servability_report
    from bert_tf.export.tflite import convert_tflite, interpreter
    from bert_tf.tasks.model_dir import FinetunedModel

    options = options or DemoOptions()
    work = os.path.join(options.out, "demo_output")
    model, tokenizer, training = finetune_sentiment(options, log)
    finetuned = save_finetuned(model, tokenizer, os.path.join(work, "finetuned"))

    test = datasets.rotten_tomatoes("test")
    if options.eval_examples is not None:
        test = test[:options.eval_examples]
    start = time.perf_counter()
    accuracy, _ = evaluate(model, tokenizer, test)
    keras_ms = 1000 * (time.perf_counter() - start) / len(test)
    log(f"Test accuracy (Keras): {100 * accuracy:.2f}% on {len(test)} reviews")

    source = FinetunedModel.load(finetuned)
    log("Exporting the TF Serving SavedModel ...")
    version_dir = export_saved_model(source, os.path.join(options.out, "saved_models", "sentiment"))
    outside = servability_report(version_dir)
    log(f"Converting to TFLite ({options.tflite_quantize}, tokenizer inside) ...")
    tflite_path = convert_tflite(source, os.path.join(work, "sentiment.tflite"),
                                 quantize=options.tflite_quantize,
                                 sequence_length=options.sequence_length)

    sentences = list(options.sentences)
    _, keras_probabilities = evaluate(model, tokenizer, [(s, 0) for s in sentences])
    loaded = tf.saved_model.load(version_dir)
    serving_default = loaded.signatures["serving_default"]
    serving_default(text=tf.constant(sentences[:1]))  # first call builds the graph
    start = time.perf_counter()
    served = serving_default(text=tf.constant(sentences))
    saved_model_ms = 1000 * (time.perf_counter() - start) / len(sentences)
    runner = interpreter(tflite_path).get_signature_runner("serving_default")
    lite_probabilities, start = [], time.perf_counter()
    for sentence in sentences:
        lite_probabilities.append(runner(text=np.array([sentence.encode()], dtype=object))
                                  ["probabilities"][0])
    tflite_ms = 1000 * (time.perf_counter() - start) / len(sentences)
    labels = source.task.label_names
    return {
        "training": training, "accuracy": accuracy, "eval_examples": len(test),
        "finetuned_dir": finetuned, "saved_model_dir": version_dir, "tflite_path": tflite_path,
        "servability_outside_ops": outside, "sentences": sentences,
        "keras_probabilities": keras_probabilities,
        "saved_model_probabilities": served["probabilities"].numpy(),
        "saved_model_labels": [s.decode() for s in served["labels"].numpy()],
        "tflite_probabilities": np.stack(lite_probabilities), "labels": labels,
        "sizes": {"keras": fileio.getsize(os.path.join(finetuned, "model.keras")),
                  "saved_model": _dir_bytes(version_dir), "tflite": fileio.getsize(tflite_path)},
        "latency_ms": {"keras (batched eval)": keras_ms, "saved_model": saved_model_ms,
                       "tflite (batch 1)": tflite_ms},
        "tflite_quantize": options.tflite_quantize,
    }


def training_summary(training: dict) -> str:
    """One line on the fine-tuning run (`finetune_sentiment`'s dict). It says the time budget
    stopped training only when steps were actually left out."""
    cut_short = training["stopped_at_time_budget"] and training["steps"] < training["planned_steps"]
    return (f"Fine-tuned MiniLM-L6 on {training['train_examples']} Rotten Tomatoes reviews: "
            f"{training['steps']}/{training['planned_steps']} steps in {training['train_seconds']:.0f} s"
            + (" (stopped at the time budget)" if cut_short else ""))


def format_report(result: dict) -> str:
    mib = 2.0 ** 20
    lines = [
        "",
        training_summary(result["training"]),
        f"Test accuracy: {100 * result['accuracy']:.2f}% ({result['eval_examples']} reviews)",
        f"SavedModel (TF Serving layout): {result['saved_model_dir']}  "
        f"servable by stock TF Serving: "
        + ("yes" if not result["servability_outside_ops"] else f"NO {result['servability_outside_ops']}"),
        f"TFLite ({result['tflite_quantize']}, tokenizer inside): {result['tflite_path']}",
        "",
        f"{'P(fresh)':>30}  Keras   SavedModel  TFLite",
    ]
    fresh = list(result["labels"]).index("fresh") if "fresh" in result["labels"] else -1
    for i, sentence in enumerate(result["sentences"]):
        short = sentence if len(sentence) <= 30 else sentence[:27] + "..."
        lines.append(f"{short:>30}  {result['keras_probabilities'][i, fresh]:.3f}   "
                     f"{result['saved_model_probabilities'][i, fresh]:.3f}       "
                     f"{result['tflite_probabilities'][i, fresh]:.3f}   "
                     f"-> {result['saved_model_labels'][i]}")
    diff_sm = np.max(np.abs(result["saved_model_probabilities"] - result["keras_probabilities"]))
    diff_lite = np.max(np.abs(result["tflite_probabilities"] - result["keras_probabilities"]))
    lines += [
        f"max |SavedModel - Keras| = {diff_sm:.2e}   max |TFLite - Keras| = {diff_lite:.2e}",
        "Sizes: " + ", ".join(f"{k} {v / mib:.1f} MiB" for k, v in result["sizes"].items()),
        "Latency per sentence: " + ", ".join(f"{k} {v:.1f} ms" for k, v in result["latency_ms"].items()),
    ]
    return "\n".join(lines)
