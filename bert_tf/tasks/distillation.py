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
- `unlabeled` texts (classification/regression) join the training set with the teacher's answer as
  their hard label (pseudo-labels) and its distribution as their soft one.
"""

from __future__ import annotations

import dataclasses
import os

import numpy as np
import tensorflow as tf

from bert_tf import fileio
from bert_tf.tasks import model_dir
from bert_tf.tasks.base import TaskFeatures

#: What defines a distillation run beyond a fine-tuning run's record, with the flag each is known by.
DISTILL_KEYS = {"teacher_sha256": "--teacher (model.keras sha256)",
                "student_layers": "--student-layers", "temperature": "--temperature",
                "alpha": "--alpha", "unlabeled_sha256": "--unlabeled (content sha256)"}


class DistillError(ValueError):
    """Distillation settings that cannot work (the message names the option)."""


@dataclasses.dataclass
class Distillation:
    teacher: model_dir.FinetunedModel
    student_layers: int | None      # None: the student is `init`
    temperature: float
    alpha: float
    layer_map: tuple | None = None

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
                               f"text for its student (classify and regress can)")
        layer_map = None
        if options.student_layers is not None:
            try:
                layer_map = student_layer_map(teacher.model.encoder.config.num_hidden_layers,
                                              options.student_layers)
            except ValueError as e:
                raise DistillError(f"--student-layers: {e}") from None
        return cls(teacher, options.student_layers, float(options.temperature),
                   float(options.alpha), layer_map)

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
            return task.build_model(load_encoder(init))
        student = task.build_model(student_encoder(self.teacher.model.encoder,
                                                   self.student_layers))
        copy_teacher_weights(self.teacher.model, student, self.layer_map)
        return student

    def teacher_outputs(self, inputs: dict, batch_size: int = 64) -> dict:
        """The teacher's distilled outputs on model inputs {name: int32 [n, s]} → {name: float32
        [n, ...]}, without dropout."""
        names = self.teacher.task.distilled_outputs
        model = self.teacher.model

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
            extra = task.encode(records).inputs
            labels = task.pseudo_labels(self.teacher_outputs(extra, batch_size))
            inputs = {k: np.concatenate([v, extra[k]], 0) for k, v in inputs.items()}
            targets["labels"] = np.concatenate([targets["labels"], labels.astype(
                targets["labels"].dtype)], 0)
        for name, value in self.teacher_outputs(inputs, batch_size).items():
            targets[f"teacher_{name}"] = value
        return TaskFeatures(inputs, targets, features.extras)

    def loss(self, task):
        """alpha · the task's distillation loss + (1 − alpha) · its own loss; both logged."""
        alpha, temperature = self.alpha, self.temperature

        def loss(outputs, targets):
            hard = task.loss(outputs, targets)
            soft = task.distillation_loss(outputs, targets, temperature)
            return {**hard, "loss": alpha * soft + (1.0 - alpha) * hard["loss"],
                    "hard_loss": hard["loss"], "soft_loss": soft}
        return loss

    def record(self, unlabeled: str | None) -> dict:
        from bert_tf.training.run_record import file_sha256
        return {"teacher_sha256": file_sha256(os.path.join(self.teacher.directory,
                                                           model_dir.MODEL_FILE)),
                "student_layers": self.student_layers, "temperature": self.temperature,
                "alpha": self.alpha,
                "unlabeled_sha256": file_sha256(unlabeled) if unlabeled else None}

    def summary(self) -> dict:
        """What task.json records of the distillation."""
        return {"teacher": fileio.abspath(self.teacher.directory),
                "teacher_layers": self.teacher.model.encoder.config.num_hidden_layers,
                "student_layers": self.student_layers,
                "layer_map": list(self.layer_map) if self.layer_map else None,
                "temperature": self.temperature, "alpha": self.alpha}


def read_training_records(task, path: str, teacher_dir: str, task_type: str):
    """The training file read by the teacher's task: data of another task, or with a label the
    teacher does not know, is one clear error."""
    try:
        return task.read(path)
    except ValueError as e:   # the readers' format errors (another task's file) and TaskDataError
        raise DistillError(f"--train {path} does not fit the {task_type!r} teacher "
                           f"{teacher_dir}: {e}") from None
