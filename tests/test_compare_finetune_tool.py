"""tools/compare_finetune.py's multi-seed bookkeeping (the fine-tuning itself is the tool's job:
it takes minutes per seed; tests/test_finetune.py covers the machinery on tiny models)."""

import importlib.util
import json
import os
import types

import pytest

TOOL = os.path.join(os.path.dirname(__file__), "..", "tools", "compare_finetune.py")


@pytest.fixture(scope="module")
def tool():
    spec = importlib.util.spec_from_file_location("compare_finetune", TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _result(test, dev):
    return {"test": {"accuracy": test}, "dev": {"accuracy": dev}, "best_step": 10, "steps": 10,
            "seconds": 1.5}


def _args(**changes):
    args = dict(task="sentiment", max_length=64, epochs=1.0, batch_size=32, learning_rate=5e-5,
                warmup=0.1, seed=1, seeds="0,1", train_limit=4000, sides="bert_tf,torch",
                out="x", progress=False, xla=False, paired=False, dropout_seed=None,
                torch_dynamic_padding=False)
    args.update(changes)
    return types.SimpleNamespace(**args)


def test_means_and_gap_over_seeds(tool, capsys):
    runs = {0: {"bert_tf": _result(0.80, 0.81), "torch": _result(0.82, 0.80)},
            1: {"bert_tf": _result(0.83, 0.80), "torch": _result(0.81, 0.79)}}
    tool.print_table(runs, "accuracy")
    out = capsys.readouterr().out
    assert "bert_tf  test accuracy: mean 81.50 ± 2.12 (sd) over 2 seed(s)" in out
    assert "torch    test accuracy: mean 81.50 ± 0.71 (sd) over 2 seed(s)" in out
    # gaps -2 and +2: mean 0, standard error sd(gaps)/sqrt(2) = 2.83/1.41 = 2.00
    assert "bert_tf - torch: +0.00 points of test accuracy (mean over 2 seed(s), standard error 2.00)" in out
    assert "bert_tf - torch: +1.00 points of dev accuracy" in out


def test_a_finished_seed_is_reused_and_another_recipe_is_refused(tool, tmp_path, capsys):
    saved = {"bert_tf": _result(0.8, 0.8), "torch": _result(0.8, 0.8)}
    recipe = vars(_args(seeds=None, out="elsewhere", seed=1))  # an older single-seed run
    (tmp_path / "results.json").write_text(json.dumps({"recipe": recipe, "results": saved}))
    assert tool.run_seed(_args(), "unused", str(tmp_path), None) == saved
    assert "reusing" in capsys.readouterr().out
    with pytest.raises(SystemExit, match="different recipe"):
        tool.run_seed(_args(learning_rate=1e-4), "unused", str(tmp_path), None)
    with pytest.raises(SystemExit, match="different recipe"):
        tool.run_seed(_args(seed=2), "unused", str(tmp_path), None)


def test_a_file_from_before_the_xla_paired_and_dropout_seed_flags_ran_without_them(
        tool, tmp_path, capsys):
    saved = {"bert_tf": _result(0.8, 0.8), "torch": _result(0.8, 0.8)}
    recipe = vars(_args())
    del recipe["xla"], recipe["paired"], recipe["dropout_seed"], recipe["torch_dynamic_padding"]
    (tmp_path / "results.json").write_text(json.dumps({"recipe": recipe, "results": saved}))
    assert tool.run_seed(_args(), "unused", str(tmp_path), None) == saved
    with pytest.raises(SystemExit, match="different recipe"):
        tool.run_seed(_args(xla=True), "unused", str(tmp_path), None)
    with pytest.raises(SystemExit, match="different recipe"):
        tool.run_seed(_args(paired=True), "unused", str(tmp_path), None)
    with pytest.raises(SystemExit, match="different recipe"):
        tool.run_seed(_args(dropout_seed=1), "unused", str(tmp_path), None)
    with pytest.raises(SystemExit, match="different recipe"):
        tool.run_seed(_args(torch_dynamic_padding=True), "unused", str(tmp_path), None)


def test_without_dropout_bert_tf_trains_exactly_like_the_pytorch_reference(tmp_path):
    """The recipe on both sides is the same computation: with dropout off, the same initial weights
    (encoder and head) and the same batches, bert_tf's Trainer (AdamWeightDecay, warmup/linear
    decay, global-norm clipping, masked token loss) and the tool's PyTorch loop (HF
    BertForTokenClassification, its google-style AdamW) give the same losses and weights step
    after step. What is left to differ between the sides is only randomness: dropout masks,
    example order, the head's initial draw."""
    import keras
    import numpy as np
    import tensorflow as tf
    import torch
    import transformers

    from bert_tf.benchmarks.torch_finetune import BertAdamW, lr_schedule
    from bert_tf.config import BertConfig
    from bert_tf.models import BertEncoder, BertTokenClassifier
    from bert_tf.tasks.base import IGNORE_INDEX
    from bert_tf.tasks.ner import NerTask
    from bert_tf.training import Trainer, TrainingOptions, create_optimizer, create_strategy

    config = BertConfig(vocab_size=200, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                        intermediate_size=64, max_position_embeddings=32,
                        hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    labels, steps, total, warmup, lr = 5, 8, 20, 3, 1e-3
    keras.utils.set_random_seed(0)
    strategy = create_strategy("one_device")
    with strategy.scope():
        ours = BertTokenClassifier(BertEncoder(config), labels, dropout=0.0)
        optimizer = create_optimizer("adamw", lr, total, warmup, 0.01)
    ours.encoder.save_pretrained(str(tmp_path))
    torch.manual_seed(0)
    theirs = transformers.BertForTokenClassification.from_pretrained(str(tmp_path), num_labels=labels)
    head = ours.get_layer("classifier")
    with torch.no_grad():
        theirs.classifier.weight.copy_(torch.from_numpy(head.kernel.numpy().T))
        theirs.classifier.bias.copy_(torch.from_numpy(head.bias.numpy()))
    theirs.train()
    reference_optimizer = BertAdamW(theirs.named_parameters(), lr_schedule(lr, total, warmup))

    rng = np.random.default_rng(0)
    ids = rng.integers(5, 200, size=(steps, 4, 12)).astype(np.int32)
    mask = np.ones_like(ids)
    mask[:, 1, 7:] = 0                                    # a padded row
    tags = rng.integers(0, labels, size=ids.shape).astype(np.int32)
    tags[:, :, 0] = IGNORE_INDEX                          # [CLS] and padding are not labeled
    tags[mask == 0] = IGNORE_INDEX
    batches = tf.data.Dataset.from_tensor_slices(
        ({"input_ids": ids, "token_type_ids": np.zeros_like(ids), "attention_mask": mask},
         {"labels": tags}))
    trainer = Trainer(ours, NerTask.loss, optimizer, strategy, str(tmp_path / "run"),
                      TrainingOptions(total_steps=total, progress=False))
    iterator = iter(trainer.distribute(batches))
    step = trainer.train_step_function()
    initial = head.kernel.numpy().copy()
    for i in range(steps):
        our_loss = float(step(iterator)["loss"])
        their_loss = theirs(input_ids=torch.from_numpy(ids[i]).long(),
                            attention_mask=torch.from_numpy(mask[i]).long(),
                            token_type_ids=torch.zeros(4, 12, dtype=torch.long),
                            labels=torch.from_numpy(tags[i]).long()).loss
        their_loss.backward()
        torch.nn.utils.clip_grad_norm_(theirs.parameters(), 1.0)
        reference_optimizer.step()
        theirs.zero_grad(set_to_none=True)
        assert our_loss == pytest.approx(float(their_loss), rel=1e-5), i
    np.testing.assert_allclose(head.kernel.numpy().T, theirs.classifier.weight.detach().numpy(),
                               atol=1e-6)
    query = ours.encoder.transformer_layers[1].attention.query.kernel.numpy().reshape(32, 32)
    np.testing.assert_allclose(
        query, theirs.bert.encoder.layer[1].attention.self.query.weight.detach().numpy().T,
        atol=1e-6)
    assert np.abs(head.kernel.numpy() - initial).max() > 100 * 1e-6   # the steps did move it


@pytest.mark.slow
def test_paired_pytorch_starts_where_bert_tf_finetune_starts(tool, tmp_path, minilm_vocab,
                                                             monkeypatch):
    """`--paired`: the head and the batch order the tool gives PyTorch are those bert_tf's
    finetune actually started from and trained on (recorded from inside the run), across an epoch
    boundary, with the tool's reconstruction made after finetune in the same process, as the tool
    does."""
    import shutil

    import keras
    import numpy as np
    import tensorflow as tf

    import bert_tf.tasks.finetuning as finetuning
    from bert_tf.config import BertConfig
    from bert_tf.data import conll, datasets
    from bert_tf.models import BertEncoder
    from bert_tf.tasks import FinetuneOptions, finetune

    init = str(tmp_path / "init")
    config = BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=1,
                        num_attention_heads=2, intermediate_size=64, max_position_embeddings=128)
    keras.utils.set_random_seed(0)
    BertEncoder(config).save_pretrained(init)
    shutil.copy(minilm_vocab, os.path.join(init, "vocab.txt"))
    # 128 positions: every sentence in one window (bert_tf windows longer ones, PyTorch's side
    # truncates them; the tool refuses --paired then, checked below)
    sentences = datasets.wnut_ner("train")[:20]
    train = str(tmp_path / "train.conll")
    conll.write_conll(train, sentences)

    seen = []   # input_ids of every batch the trainer pulls, in order

    def recording(features, batch_size, seed):
        def record(inputs, targets):
            tf.py_function(lambda ids: seen.append(ids.numpy()), [inputs["input_ids"]], [])
            return inputs, targets
        return original(features, batch_size, seed).map(record)

    original = finetuning.train_dataset
    monkeypatch.setattr(finetuning, "train_dataset", recording)
    seed, batch, steps = 5, 8, 6                       # 20 examples: 3 batches/epoch, 2 epochs
    out = str(tmp_path / "run")
    # learning rate ~0: the saved model still holds the initial head
    finetune(FinetuneOptions("ner", init, train, out, max_length=128, epochs=2, batch_size=batch,
                             learning_rate=1e-12, seed=seed, strategy="one_device",
                             progress=False))
    head = keras.saving.load_model(os.path.join(out, "model.keras")).get_layer("classifier")
    labels = json.load(open(os.path.join(out, "labels.json")))

    kernel, bias, order = tool.bert_tf_start("ner", init, labels, seed, len(sentences), batch,
                                             steps)
    np.testing.assert_allclose(kernel, head.kernel.numpy(), atol=1e-9)
    np.testing.assert_allclose(bias, head.bias.numpy(), atol=1e-9)
    assert order.shape == (steps, batch)
    assert sorted(order[:2].reshape(-1).tolist() + order[2, :4].tolist()) == list(range(20))
    # the same sentences, batch by batch: the tool's indices into the file vs what finetune trained on
    from bert_tf.tasks.registry import make_task
    from bert_tf.text import BertTokenizer
    from bert_tf.text.vocabulary import read_vocabulary
    task = make_task("ner", BertTokenizer(read_vocabulary(minilm_vocab), sequence_length=128),
                     labels)
    ids = task.encode(task.read(train), training=True).inputs["input_ids"]
    assert len(seen) >= steps
    for step in range(steps):
        np.testing.assert_array_equal(ids[order[step]], seen[step], err_msg=f"step {step}")
    other = tool.bert_tf_start("ner", init, labels, seed + 1, len(sentences), batch, steps)
    assert not np.array_equal(other[2], order) and not np.allclose(other[0], kernel)
    tool.check_one_window_per_sentence(init, train, labels, 128, len(sentences))
    with pytest.raises(SystemExit, match="raise --max-length"):
        tool.check_one_window_per_sentence(init, train, labels, 16, len(sentences))


def test_dynamic_padding_cuts_to_the_longest_row_as_contiguous_tensors():
    """The PyTorch peer's batches: cut after the longest row, and contiguous, as the HF collator
    gives them (a strided slice made BertForTokenClassification's `labels.view(-1)` fail)."""
    import torch
    from bert_tf.benchmarks.torch_finetune import cut_to_longest
    mask = torch.tensor([[1, 1, 1, 0, 0, 0], [1, 1, 0, 0, 0, 0]])
    batch = {"input_ids": torch.arange(12).reshape(2, 6), "attention_mask": mask,
             "labels": torch.full((2, 6), -100), "label": torch.tensor([0, 1])}
    cut = cut_to_longest(batch)
    assert cut["input_ids"].tolist() == [[0, 1, 2], [6, 7, 8]]
    assert all(v.is_contiguous() for v in cut.values())
    cut["labels"].view(-1)
    assert cut["label"].tolist() == [0, 1]
