"""`bert-tf distill`: a smaller student fine-tuned on what a fine-tuned teacher answers.

The student is an ordinary fine-tuning run (`bert_tf.tasks.finetuning.finetune` with a teacher):
same trainer, checkpoints, kill -9 resume, XLA, eval selection and output directory, which
`evaluate`, `predict` and every export read as they read any fine-tuned model. What distillation
changes:
- The task, labels, vocabulary, casing and task options are the teacher's (its task.json), so the
  student's outputs line up with the teacher's one to one.
- The student starts from K of the teacher's own layers (`bert_tf.models.student`: every
  (L/K)-th, embeddings, pooler and head copied, as DistilBERT and BERT-PKD start), or from another
  pre-trained encoder (`init`) with the teacher's vocabulary.
- The teacher's outputs on every training feature are computed once, before training (its
  dropout is off, so they are fixed), and kept as targets `teacher_<output>`: the batches stay a
  function of the seed, so an interrupted run resumes to the same weights.
- The loss is alpha · T² · KL(teacher/T ‖ student/T) + (1 − alpha) · the task's own loss
  (Hinton et al. 2015; the task says which outputs and positions, `distillation_loss`).
- `ensemble`: more fine-tuned teachers of the same task, labels and vocabulary. The soft targets
  are the mean of every teacher's distribution at the temperature (a regressor's: the mean
  score), written as logits (`average_teacher_outputs`), so the loss and the pseudo-labels read
  the ensemble as they read one teacher (Hinton et al. 2015 distil an ensemble this way). The
  student's layers, and any hidden/attention transfer, come from `teacher` alone.
- `unlabeled` texts (classification/regression; NER sentences) join the training set with the
  teacher's answer as their hard label (pseudo-labels) and its distribution as their soft one.
- `augment` (ner): label-wise token replacement versions of the training sentences
  (`bert_tf.data.augmentation`) join them with their tags kept, as new contexts for the teacher's
  soft tags.
- Optionally, intermediate transfer (TinyBERT, Jiao et al. 2020; MiniLM, Wang et al. 2020):
  `hidden_weight` · the mean squared error between the student's hidden states and its mapped
  teacher layers' (embeddings ↔ embeddings too), through a learned projection W_h when the student
  is narrower, and `attention_weight` · the KL divergence of their self-attention distributions,
  head by head, on every mapped layer (`hidden_transfer_loss`, `attention_transfer_loss`). Those
  states are too big to precompute: the frozen teacher's encoder runs inside each training step
  next to the student (`Distillation.forward`), on the padded batch (no packing). The projection
  is trained and checkpointed with the student (the trainer's `auxiliary`) but is no part of the
  student, so OUT/model.keras is the plain student task model.
"""

from __future__ import annotations

import dataclasses
import logging
import os

import numpy as np
import tensorflow as tf

from bert_tf import fileio
from bert_tf.tasks import model_dir
from bert_tf.tasks.base import INPUT_NAMES, TaskFeatures

logger = logging.getLogger(__name__)

#: What defines a distillation run beyond a fine-tuning run's record, with the flag each is known by.
DISTILL_KEYS = {"teacher_sha256": "--teacher (model.keras sha256)",
                "student_layers": "--student-layers", "temperature": "--temperature",
                "alpha": "--alpha", "unlabeled_sha256": "--unlabeled (content sha256)",
                "hidden_weight": "--hidden-weight", "attention_weight": "--attention-weight",
                "augment": "--augment", "augment_rate": "--augment-rate",
                "ensemble_sha256": "--ensemble (model.keras sha256 of each)"}

#: The floor of probabilities under a log: padding keys' probabilities underflow to exactly 0
#: (BERT's -10000 mask), attended keys' stay far above it (scores ~69 apart would be needed to reach
#: it); above float32's smallest normal number, so log(max(p, _TINY)) is finite.
_TINY = 1e-30


class DistillError(ValueError):
    """Distillation settings that cannot work (the message names the option)."""


@dataclasses.dataclass
class Distillation:
    teacher: model_dir.FinetunedModel
    student_layers: int | tuple | list | None   # a count or teacher layer indices; None: `init`
    temperature: float
    alpha: float
    layer_map: tuple | None = None
    hidden_weight: float = 0.0
    attention_weight: float = 0.0
    # With transfer on, set by `build_student`: the teacher layer each student layer learns from,
    # and the projection of a narrower student's states to the teacher's width (or None).
    transfer_map: tuple | None = None
    projection: object = None
    # Label-wise token replacement versions of each training sentence (ner), and their rate.
    augment: int = 0
    augment_rate: float = 0.3
    # More teachers whose answers are averaged with the teacher's (FinetunedModel each).
    ensemble: tuple = ()

    @classmethod
    def prepare(cls, options) -> "Distillation":
        """Checks the distillation options of a `FinetuneOptions` and loads the teacher."""
        from bert_tf.models.student import student_layer_map
        if not (options.temperature > 0 and np.isfinite(options.temperature)):
            raise DistillError(f"--temperature must be a positive finite number, got "
                               f"{options.temperature}")
        if not 0 <= options.alpha <= 1:
            raise DistillError(f"--alpha is the weight of the teacher's loss, in [0, 1]; got "
                               f"{options.alpha}")
        for flag, weight in (("--hidden-weight", options.hidden_weight),
                             ("--attention-weight", options.attention_weight)):
            if not (weight >= 0 and np.isfinite(weight)):   # NaN fails both
                raise DistillError(f"{flag} must be a finite number >= 0 (0: off), got {weight}")
        if options.freeze_encoder and (options.hidden_weight > 0 or options.attention_weight > 0):
            raise DistillError("--hidden-weight and --attention-weight train the student's encoder "
                               "towards the teacher's; --freeze-encoder keeps it fixed: drop one")
        if (options.student_layers is None) == (options.init is None):
            raise DistillError("give the student as --student-layers K (K of the teacher's layers) "
                               "or --student-init CHECKPOINT (a smaller pre-trained encoder), "
                               "not both" if options.init else "nor neither")
        try:
            teacher = model_dir.FinetunedModel.load(options.teacher)
        except model_dir.ModelDirError as e:
            raise DistillError(f"--teacher: {e}") from None
        task = teacher.task
        if not task.distilled_outputs:
            raise DistillError(f"--teacher {options.teacher} is a {teacher.task_type!r} model: "
                               f"distillation needs a task head (classify, regress, ner, squad)")
        if options.task not in (None, teacher.task_type):
            raise DistillError(f"--teacher {options.teacher} is a {teacher.task_type!r} model, "
                               f"not {options.task!r}")
        if options.unlabeled is not None and task.pseudo_labels is None:
            raise DistillError(f"--unlabeled: a {teacher.task_type!r} teacher cannot label raw "
                               f"text for its student (classify, regress and ner can)")
        augment, rate = options.augment, options.augment_rate
        if isinstance(augment, bool) or not isinstance(augment, int) or augment < 0:
            raise DistillError(f"--augment is a number of new versions of each training "
                               f"sentence, an integer >= 0 (0: off); got {augment!r}")
        if not 0 < rate <= 1:   # NaN fails it too
            raise DistillError(f"--augment-rate is the probability that a word is replaced, in "
                               f"(0, 1]; got {rate}")
        if augment and task.augment is None:
            raise DistillError(f"--augment: a {teacher.task_type!r} task has no replacement "
                               f"that keeps its labels (ner's tags do; classify and regress "
                               f"take more texts with --unlabeled)")
        layer_map = None
        if options.student_layers is not None:
            try:
                layer_map = student_layer_map(teacher.model.encoder.config.num_hidden_layers,
                                              options.student_layers)
            except ValueError as e:
                raise DistillError(f"--student-layers: {e}") from None
        ensemble = tuple(load_ensemble_member(path, teacher, options.max_length)
                         for path in options.ensemble)
        return cls(teacher, options.student_layers, float(options.temperature),
                   float(options.alpha), layer_map, float(options.hidden_weight),
                   float(options.attention_weight), augment=augment, augment_rate=float(rate),
                   ensemble=ensemble)

    @property
    def transfers(self) -> bool:
        """Whether the student also learns the teacher's hidden states or attention."""
        return self.hidden_weight > 0 or self.attention_weight > 0

    # ------------------------------------------------------------------ the run's pieces
    @property
    def vocab_path(self) -> str:
        return os.path.join(self.teacher.directory, model_dir.VOCAB_FILE)

    def task(self, max_length: int):
        """The teacher's task (labels, options, casing) with a tokenizer of `max_length`."""
        from bert_tf.tasks.registry import with_tokenizer
        from bert_tf.text import BertTokenizer
        tokenizer = self.teacher.tokenizer
        if tokenizer.sequence_length == max_length:
            return self.teacher.task
        return with_tokenizer(self.teacher.task, BertTokenizer(
            tokenizer.get_vocabulary(), lowercase=tokenizer.lowercase,
            sequence_length=max_length))

    def check_student_vocab(self, init: str, vocab_path: str) -> None:
        """A student from its own checkpoint must read the teacher's token ids."""
        from bert_tf.text.vocabulary import read_vocabulary
        if list(read_vocabulary(vocab_path)) != list(read_vocabulary(self.vocab_path)):
            raise DistillError(f"--student-init {init}: its vocabulary {vocab_path} differs from "
                               f"the teacher's ({self.vocab_path}); a student must share the "
                               f"teacher's token ids")

    def build_student(self, task, init: str | None):
        """The student task model (under the caller's strategy scope)."""
        from bert_tf.models.pretrained import load_encoder
        from bert_tf.models.student import copy_teacher_weights, student_encoder
        if init is not None:
            student = task.build_model(load_encoder(init))
        else:
            student = task.build_model(student_encoder(self.teacher.model.encoder,
                                                       self.student_layers))
            copy_teacher_weights(self.teacher.model, student, self.layer_map)
        if self.transfers:
            self._prepare_transfer(student.encoder.config, init)
        return student

    def _prepare_transfer(self, student_config, init: str | None) -> None:
        """Checks that the student's layers can learn the teacher's, and sets `transfer_map` and
        (a narrower student with `hidden_weight`) `projection`; before anything is written."""
        import keras

        from bert_tf.layers import truncated_normal
        from bert_tf.models.student import transfer_layer_map
        teacher_config = self.teacher.model.encoder.config
        student_name = f"--student-init {init}" if init is not None else "the student"
        heads = student_config.num_attention_heads, teacher_config.num_attention_heads
        if self.attention_weight > 0 and heads[0] != heads[1]:
            raise DistillError(f"--attention-weight: {student_name} has {heads[0]} attention "
                               f"heads per layer and the teacher {heads[1]}; attention transfer "
                               f"compares their distributions head by head, so it needs the "
                               f"same count (or --attention-weight 0)")
        if self.layer_map is not None:   # the layers the student was copied from
            self.transfer_map = self.layer_map
        else:
            try:
                self.transfer_map = transfer_layer_map(teacher_config.num_hidden_layers,
                                                       student_config.num_hidden_layers)
            except ValueError as e:
                raise DistillError(f"--hidden-weight/--attention-weight: {student_name}: {e}") \
                    from None
        widths = student_config.hidden_size, teacher_config.hidden_size
        if self.hidden_weight > 0 and widths[0] != widths[1]:
            # TinyBERT's W_h: student states [.., h_s] → [.., h_t], trained with the student and
            # dropped with the run (OUT/model.keras is the student alone). float32: it reads the
            # states cast to float32 and feeds a float32 loss.
            self.projection = keras.layers.Dense(
                widths[1], name="hidden_projection", dtype="float32",
                kernel_initializer=truncated_normal(teacher_config.initializer_range))
            self.projection.build((None, None, widths[0]))

    def forward(self, default=None):
        """The trainer's forward (`Trainer(forward=...)`): `default` without transfer (the
        precomputed logits are all the loss reads); with transfer, a function that runs the
        student once (`BertTaskModel.forward_with_states`) and the frozen teacher's encoder
        (training=False: no dropout, as its logits were computed) on the same padded batch and
        returns the student's task outputs plus the scalars "hidden_loss" and/or
        "attention_loss" that `loss` weighs. Not packed: the teacher and the student compare
        every attended position of [b, t] tensors. Shapes are static, so XLA compiles it. The
        teacher's variables were loaded before the strategy: each replica reads them as they are."""
        if not self.transfers:
            return default
        teacher = self.teacher.model.encoder
        hidden, attention = self.hidden_weight > 0, self.attention_weight > 0
        layer_map, projection = self.transfer_map, self.projection

        def forward(model, inputs, training):
            outputs, states, attentions = model.forward_with_states(
                inputs, training=training, return_attention=attention)
            bert_inputs = {name: inputs[name] for name in INPUT_NAMES if name in inputs}
            mask = bert_inputs.get("attention_mask")
            if mask is None:
                mask = tf.ones_like(bert_inputs["input_ids"])                   # [b, t]
            encoded = teacher.encode(bert_inputs, training=False, all_layers=True,
                                     return_attention=attention)
            teacher_states, teacher_attentions = encoded if attention else (encoded, None)
            extra = {}
            if hidden:
                # Embeddings ↔ embeddings (states[0]), student layer j ↔ teacher layer
                # layer_map[j] (states[j + 1], states[layer_map[j] + 1]).
                extra["hidden_loss"] = hidden_transfer_loss(
                    states, [teacher_states[0]] + [teacher_states[i + 1] for i in layer_map],
                    mask, projection)
            if attention:
                extra["attention_loss"] = attention_transfer_loss(
                    attentions, [teacher_attentions[i] for i in layer_map], mask)
            return {**outputs, **extra}
        return forward

    def teacher_outputs(self, inputs: dict, batch_size: int = 64) -> dict:
        """The teacher's distilled outputs on model inputs {name: int32 [n, s]} → {name: float32
        [n, ...]}, without dropout; with an `ensemble`, every teacher's averaged
        (`average_teacher_outputs`)."""
        names = self.teacher.task.distilled_outputs
        answers = [model_outputs(member.model, names, inputs, batch_size)
                   for member in (self.teacher, *self.ensemble)]
        if len(answers) == 1:
            return answers[0]
        return average_teacher_outputs(answers, self.temperature,
                                       scores=self.teacher.task_type == "regress")

    def augmented(self, task, records, seed: int):
        """The training records and, with `augment`, the task's label-keeping new versions of
        them (seeded by the run's seed, so a resumed run trains on the same data)."""
        if not self.augment:
            return records
        out = task.augment(records, self.augment, self.augment_rate, seed)
        logger.info("--augment %d: %d new training sentences (%d before)", self.augment,
                    len(out) - len(records), len(records))
        return out

    def training_features(self, task, features: TaskFeatures, unlabeled: str | None,
                          batch_size: int) -> TaskFeatures:
        """The labeled features (and the pseudo-labeled `unlabeled` texts) with the teacher's
        outputs as targets `teacher_<name>`."""
        inputs, targets = dict(features.inputs), dict(features.targets)
        if unlabeled is not None:
            try:
                records = task.read(unlabeled, labeled=False)
            except ValueError as e:   # the readers' format errors and TaskDataError
                raise DistillError(f"--unlabeled {unlabeled}: {e}") from None
            if len(records) == 0:
                raise DistillError(f"--unlabeled {unlabeled}: no texts")
            encoded = task.encode(records)
            extra = encoded.inputs
            labels = task.pseudo_labels(self.teacher_outputs(extra, batch_size), encoded.extras)
            inputs = {k: np.concatenate([v, extra[k]], 0) for k, v in inputs.items()}
            targets["labels"] = np.concatenate([targets["labels"], labels.astype(
                targets["labels"].dtype)], 0)
        for name, value in self.teacher_outputs(inputs, batch_size).items():
            targets[f"teacher_{name}"] = value
        return TaskFeatures(inputs, targets, features.extras)

    def loss(self, task):
        """alpha · the task's distillation loss + (1 − alpha) · its own loss; both logged."""
        alpha, temperature = self.alpha, self.temperature

        transfer = {name: weight for name, weight in (("hidden_loss", self.hidden_weight),
                                                      ("attention_loss", self.attention_weight))
                    if weight > 0}   # the scalars `forward` adds to the outputs

        def loss(outputs, targets):
            hard = task.loss(outputs, targets)
            soft = task.distillation_loss(outputs, targets, temperature)
            total = alpha * soft + (1.0 - alpha) * hard["loss"]
            for name, weight in transfer.items():
                total = total + weight * outputs[name]
            return {**hard, "loss": total, "hard_loss": hard["loss"], "soft_loss": soft,
                    **{name: outputs[name] for name in transfer}}
        return loss

    def record(self, unlabeled: str | None) -> dict:
        from bert_tf.training.run_record import file_sha256
        record = {"teacher_sha256": file_sha256(os.path.join(self.teacher.directory,
                                                             model_dir.MODEL_FILE)),
                  "student_layers": list(self.student_layers)
                  if isinstance(self.student_layers, (tuple, list)) else self.student_layers,
                  "temperature": self.temperature, "alpha": self.alpha,
                  "unlabeled_sha256": file_sha256(unlabeled) if unlabeled else None,
                  "hidden_weight": self.hidden_weight, "attention_weight": self.attention_weight}
        if self.augment:   # absent when off, so runs recorded before --augment existed resume
            record.update(augment=self.augment, augment_rate=self.augment_rate)
        if self.ensemble:  # likewise
            record["ensemble_sha256"] = [
                file_sha256(os.path.join(m.directory, model_dir.MODEL_FILE))
                for m in self.ensemble]
        return record

    def summary(self) -> dict:
        """What task.json records of the distillation."""
        return {"teacher": fileio.abspath(self.teacher.directory),
                "teacher_layers": self.teacher.model.encoder.config.num_hidden_layers,
                "student_layers": len(self.layer_map) if self.layer_map else None,
                "layer_map": list(self.layer_map) if self.layer_map else None,
                "temperature": self.temperature, "alpha": self.alpha,
                "hidden_weight": self.hidden_weight, "attention_weight": self.attention_weight,
                "transfer_layer_map": list(self.transfer_map) if self.transfer_map else None,
                "hidden_projection": self.projection is not None,
                "ensemble": [fileio.abspath(m.directory) for m in self.ensemble],
                "augment": self.augment, "augment_rate": self.augment_rate}


def model_outputs(model, names, inputs: dict, batch_size: int) -> dict:
    """A task model's outputs `names` on inputs {name: int32 [n, s]}, in batches, without
    dropout → {name: float32 [n, ...]}."""

    @tf.function(reduce_retracing=True)
    def forward(batch):
        outputs = model(batch, training=False)
        return {name: tf.cast(outputs[name], tf.float32) for name in names}

    n = len(next(iter(inputs.values())))
    parts = {name: [] for name in names}
    for start in range(0, n, batch_size):
        batch = {k: tf.constant(v[start:start + batch_size]) for k, v in inputs.items()}
        for name, value in forward(batch).items():
            parts[name].append(value.numpy())
    return {name: np.concatenate(chunks, 0) for name, chunks in parts.items()}


def average_teacher_outputs(answers: list, temperature: float, scores: bool = False) -> dict:
    """Several teachers' outputs [{name: float32 [n, ..., classes]}] → one set the loss reads as
    a single teacher's. Distributions: z = T · log(mean_k softmax(z_k / T)) over the last axis,
    so softmax(z / T) is exactly the teachers' mean distribution at the temperature the loss
    uses (averaging logits instead would be a geometric mean) and argmax(z), the pseudo-label,
    is the mixture's most likely class. Scores (regress, [n, 1]): their mean."""
    averaged = {}
    for name in answers[0]:
        stacked = np.stack([answer[name] for answer in answers])          # [k, n, ..., c]
        if scores:
            averaged[name] = stacked.mean(0).astype(np.float32)
            continue
        scaled = stacked.astype(np.float64) / temperature
        scaled -= scaled.max(-1, keepdims=True)
        probabilities = np.exp(scaled)
        probabilities /= probabilities.sum(-1, keepdims=True)
        mixture = probabilities.mean(0)                                  # [n, ..., c]
        averaged[name] = (temperature * np.log(np.maximum(mixture, _TINY))).astype(np.float32)
    return averaged


def load_ensemble_member(path: str, teacher, max_length: int):
    """One `--ensemble` teacher, checked against `--teacher`: the same task, labels (in the
    same order: class ids), vocabulary and casing, so its answers on the same token ids line up
    with the teacher's; and room for the student's sequences."""
    flag = f"--ensemble {path}"
    try:
        member = model_dir.FinetunedModel.load(path)
    except model_dir.ModelDirError as e:
        raise DistillError(f"{flag}: {e}") from None
    if member.task_type != teacher.task_type:
        raise DistillError(f"{flag} is a {member.task_type!r} model and --teacher "
                           f"{teacher.directory} a {teacher.task_type!r} one; an ensemble "
                           f"answers one task")
    labels = tuple(getattr(member.task, "label_names", ()))
    teacher_labels = tuple(getattr(teacher.task, "label_names", ()))
    if labels != teacher_labels:
        raise DistillError(f"{flag}: its labels {list(labels)} are not the teacher's "
                           f"{list(teacher_labels)} (names and order: class ids must match)")
    # Both tokenizers were built from their directories' vocab.txt when the models loaded.
    if member.tokenizer.get_vocabulary() != teacher.tokenizer.get_vocabulary() or \
            member.tokenizer.lowercase != teacher.tokenizer.lowercase:
        raise DistillError(f"{flag}: its vocabulary or casing differs from the teacher's; every "
                           f"teacher of an ensemble must read the same token ids")
    positions = member.model.encoder.config.max_position_embeddings
    if positions < max_length:
        raise DistillError(f"{flag}: it reads at most {positions} positions, fewer than the "
                           f"student's --max-length {max_length}")
    return member


def hidden_transfer_loss(student_states, teacher_states, attention_mask, projection=None):
    """TinyBERT's hidden-state loss: the mean squared error between each student state and its
    teacher state, averaged over the pairs, the attended positions and the teacher's units.

    student_states: list of [b, t, h_s]; teacher_states: the same number of [b, t, h_t] (their
    gradient stopped); attention_mask: [b, t] (1 attended: padding rows are not compared);
    projection: a layer [..., h_s] → [..., h_t] when h_s ≠ h_t.
    Why means, not TinyBERT's sum over layers: each state is a LayerNorm output (the embeddings'
    and every block's), about unit variance per unit, so the per-unit MSE is about 2 between
    unrelated states and 0 between equal ones, whatever the width, the length or how many layers
    are mapped; that is the scale of the cross-entropy losses early in training, so
    --hidden-weight 1 weighs it about as much as the logit loss, for any student depth."""
    weights = tf.cast(attention_mask, tf.float32)                                 # [b, t]
    positions = tf.maximum(tf.reduce_sum(weights), 1.0)
    total = 0.0
    for student, teacher in zip(student_states, teacher_states, strict=True):
        student = tf.cast(student, tf.float32)                                    # [b, t, h_s]
        if projection is not None:
            student = projection(student)                                         # [b, t, h_t]
        teacher = tf.stop_gradient(tf.cast(teacher, tf.float32))                  # [b, t, h_t]
        squared = tf.reduce_mean(tf.square(student - teacher), axis=-1)           # [b, t]
        total += tf.reduce_sum(squared * weights) / positions
    return total / len(student_states)


def attention_transfer_loss(student_attentions, teacher_attentions, attention_mask):
    """MiniLM's attention loss on every mapped layer: KL(teacher row ‖ student row) of the
    self-attention distributions, summed over keys, averaged over the heads, the attended query
    rows and the layer pairs.

    student_attentions, teacher_attentions: lists of probabilities [b, n, t, t] (the same head
    count n; the teacher's gradient stopped); attention_mask: [b, t] (padding query rows are not
    compared; padding keys have probability 0 in both, so they add nothing). A row's KL is
    between 0 and log(t), a few units at most: --attention-weight 1 is on the logit loss's
    scale too.
    Why every mapped layer (TinyBERT) and not only the last (MiniLM v1): MiniLM transfers the last
    layer alone to free a pre-training student's depth from any layer map, but this student has
    one (the layers it was copied from, or the uniform map) and the hidden loss already uses it;
    every layer then has a target next to its hidden state's, and the student pass computes every
    layer's probabilities anyway."""
    weights = tf.cast(attention_mask, tf.float32)                                 # [b, t]
    rows = tf.maximum(tf.reduce_sum(weights), 1.0)
    total = 0.0
    for student, teacher in zip(student_attentions, teacher_attentions, strict=True):
        teacher = tf.stop_gradient(tf.cast(teacher, tf.float32))                  # [b, n, t, t]
        log_ratio = tf.math.log(tf.maximum(teacher, _TINY)) - \
            tf.math.log(tf.maximum(tf.cast(student, tf.float32), _TINY))          # [b, n, t, t]
        # 0 · log 0 = 0: keys the teacher gives nothing (padding) add nothing, and the where keeps
        # their gradient 0 rather than NaN.
        kl = tf.reduce_sum(tf.where(teacher > 0, teacher * log_ratio, 0.0), axis=-1)  # [b, n, t]
        total += tf.reduce_sum(tf.reduce_mean(kl, axis=1) * weights) / rows
    return total / len(student_attentions)


def read_training_records(task, path: str, teacher_dir: str, task_type: str):
    """The training file read by the teacher's task: data of another task, or with a label the
    teacher does not know, is one clear error."""
    try:
        return task.read(path)
    except ValueError as e:   # the readers' format errors (another task's file) and TaskDataError
        raise DistillError(f"--train {path} does not fit the {task_type!r} teacher "
                           f"{teacher_dir}: {e}") from None
