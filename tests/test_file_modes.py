"""What bert_tf publishes gets the mode a plain open()/mkdir() would give it (0666/0777 less the
umask), not the private 0600/0700 of the temporaries it is written through: a model server
running as another user must be able to read a SavedModel version, models.config, model.keras."""

import os
import stat

import numpy as np
import pytest

from bert_tf.atomic import StagingDir, staged_directory, write_bytes_atomic


@pytest.fixture(params=[0o022, 0o027])
def umask(request):
    previous = os.umask(request.param)
    yield request.param
    os.umask(previous)


def mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def test_atomic_writers_publish_with_the_umask_mode(tmp_path, umask):
    write_bytes_atomic(str(tmp_path / "file.txt"), b"x")
    assert mode(tmp_path / "file.txt") == 0o666 & ~umask
    with StagingDir(str(tmp_path / "version")) as staging:
        open(os.path.join(staging, "a"), "w").close()
    assert mode(tmp_path / "version") == 0o777 & ~umask
    with staged_directory(str(tmp_path / "converted")) as staging:
        open(os.path.join(staging, "config.json"), "w").close()
    assert mode(tmp_path / "converted") == 0o777 & ~umask


def test_saved_model_export_is_readable_by_others(tmp_path, minilm_vocab, umask):
    import keras

    from bert_tf import BertConfig, BertEncoder
    from bert_tf.export import export_saved_model
    from bert_tf.models import BertClassifier
    from bert_tf.text import BertTokenizer
    keras.utils.set_random_seed(0)
    tokenizer = BertTokenizer.from_vocab_file(minilm_vocab, sequence_length=16)
    config = BertConfig(vocab_size=tokenizer.vocabulary_size(), hidden_size=16,
                        num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
                        max_position_embeddings=16)
    version = export_saved_model(BertClassifier(BertEncoder(config), 2), tmp_path / "m",
                                 tokenizer=tokenizer, labels=["a", "b"])
    assert mode(version) == 0o777 & ~umask
    assert mode(os.path.join(version, "saved_model.pb")) == 0o666 & ~umask
    for name in os.listdir(tmp_path):
        path = os.path.join(tmp_path, name)
        if os.path.isfile(path):   # models.config, batching_parameters.txt
            assert mode(path) == 0o666 & ~umask, name
    assert np.isfinite(os.path.getsize(os.path.join(version, "saved_model.pb")))
