"""Text: BERT's in-graph WordPiece tokenizer (a Keras layer), pair packing, vocabularies."""

from bert_tf.text.tokenizer import BertTokenizer
from bert_tf.text.vocabulary import SpecialTokens, VocabularyError, read_vocabulary, write_vocabulary

__all__ = ["BertTokenizer", "SpecialTokens", "VocabularyError", "read_vocabulary", "write_vocabulary"]
