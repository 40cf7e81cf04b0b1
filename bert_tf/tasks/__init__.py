"""Fine-tuning tasks: sentence classification, NER (token classification), extractive QA (SQuAD),
sentence embeddings.

Each task module (`classification`, `ner`, `squad`, `embedding`) turns reader records (`bert_tf.data`) into
model features with the in-graph `BertTokenizer`, defines the loss, and turns model outputs back
into predictions and the task's metric. `finetuning.finetune` runs a job; `bert-tf finetune`,
`bert-tf evaluate` and `bert-tf predict` are its command line.

Every task has one inference path in graph ops (`inference`: raw texts → features → model →
decoded answers) that predict, evaluate, the evaluations during fine-tuning and the exported
SavedModel all run. The output directory of `bert-tf finetune ... --out OUT` is read and written
through `model_dir` only (its docstring is the schema).
"""

from bert_tf.tasks.model_dir import ArtifactError, FinetunedModel, ModelDirError
from bert_tf.tasks.base import IGNORE_INDEX, TaskDataError, TaskFeatures
from bert_tf.tasks.classification import ClassificationTask, RegressionTask
from bert_tf.tasks.embedding import EmbedTask
from bert_tf.tasks.finetuning import (FinetuneError, FinetuneOptions, FinetuneResult, evaluate,
                                      finetune, predict)
from bert_tf.tasks.ner import NerTask
from bert_tf.tasks.registry import TASKS, make_task
from bert_tf.tasks.squad import SquadTask

__all__ = ["ArtifactError", "ModelDirError", "RegressionTask", "FinetunedModel", "IGNORE_INDEX", "TaskDataError", "TaskFeatures",
           "ClassificationTask", "FinetuneError", "FinetuneOptions", "FinetuneResult", "evaluate",
           "finetune", "predict", "NerTask", "TASKS", "make_task", "SquadTask", "EmbedTask"]
