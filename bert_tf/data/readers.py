"""Task file readers in one place: classification (CSV/TSV/JSONL), CoNLL token/tag files, SQuAD JSON.

Each format lives in its own module; this one only gathers their public names.
"""

from bert_tf.data.classification import (ClassificationData, ClassificationDataError, label_vocabulary,
                                         read_classification, write_classification)
from bert_tf.data.conll import ConllFormatError, check_iob2, read_conll, tag_vocabulary, write_conll
from bert_tf.data.squad import (SquadAnswer, SquadExample, SquadFormatError, load_squad_json,
                                parse_squad, read_squad, write_squad_json)

__all__ = [
    "ClassificationData", "ClassificationDataError", "label_vocabulary", "read_classification",
    "write_classification", "ConllFormatError", "check_iob2", "read_conll", "tag_vocabulary",
    "write_conll", "SquadAnswer", "SquadExample", "SquadFormatError", "load_squad_json", "parse_squad",
    "read_squad", "write_squad_json",
]
