"""Fine-tuning tasks: sentence classification, NER (token classification), extractive QA (SQuAD).

Each task module (`classification`, `ner`, `squad`) turns reader records (`bert_tf.data`) into
model features with the in-graph `BertTokenizer`, defines the loss, and turns model outputs back
into predictions and the task's metric. `finetuning.finetune` runs a job; `bert-tf finetune`,
`bert-tf evaluate` and `bert-tf predict` are its command line.

Output directory of `bert-tf finetune ... --out OUT` (read by `evaluate`, `predict` and
`bert-tf export saved-model --model OUT`):

    OUT/model.keras        the task model (BertClassifier / BertTokenClassifier / BertSpanLabeler)
                           of the best eval checkpoint (the last one when there is no eval file);
                           `keras.saving.load_model` loads it (import bert_tf first). Inputs:
                           int32 input_ids, token_type_ids, attention_mask [batch, seq].
    OUT/labels.json        JSON list of label names, index = class id ([] for squad)
    OUT/vocab.txt          the WordPiece vocabulary the tokenizer uses
    OUT/task.json          {"format_version": 1, "task": "classify" | "ner" | "squad",
                            "max_length": int, "lowercase": bool,
                            "task_settings": {... task options: text columns / IOB scheme /
                                              doc_stride, max_query_length, version_2 ...},
                            "metric": name, "metrics": {best eval metrics}, "best_step": int,
                            "steps": int, "init": path, "hyperparameters": {...}}
    OUT/eval_history.json  every evaluation: {"history": [[step, metrics]], "best": [step, metrics]}
    OUT/checkpoints/       training checkpoints (resume); OUT/tensorboard/ (scalars)

The tokenizer that matches the model is
`BertTokenizer.from_vocab_file(OUT/vocab.txt, lowercase=task.json lowercase,
sequence_length=task.json max_length)`. `task.json` is written last: a directory without it is an
unfinished (or interrupted, resumable) run.
"""

from bert_tf.tasks.artifacts import ArtifactError, FinetunedModel
from bert_tf.tasks.base import IGNORE_INDEX, TaskDataError, TaskFeatures
from bert_tf.tasks.classification import ClassificationTask
from bert_tf.tasks.finetuning import (FinetuneError, FinetuneOptions, FinetuneResult, evaluate,
                                      finetune, predict)
from bert_tf.tasks.ner import NerTask
from bert_tf.tasks.registry import TASKS, make_task
from bert_tf.tasks.squad import SquadTask

__all__ = ["ArtifactError", "FinetunedModel", "IGNORE_INDEX", "TaskDataError", "TaskFeatures",
           "ClassificationTask", "FinetuneError", "FinetuneOptions", "FinetuneResult", "evaluate",
           "finetune", "predict", "NerTask", "TASKS", "make_task", "SquadTask"]
