"""The PyTorch side of fine-tuning comparisons: transformers' BertForSequenceClassification /
BertForTokenClassification trained with the recipe bert_tf's `finetune` runs, the way transformers
users run it.

Recipe: AdamW as google-research/bert has it (`BertAdamW`: no bias correction, eps 1e-6, weight
decay 0.01 except LayerNorm and bias), linear warmup then linear decay to 0 (`lr_schedule`),
global-norm clipping 1.0, the checkpoint's dropout, a seeded shuffle with the last partial batch
wrapped into the next epoch; the dev split is scored after every epoch and the best epoch is kept.

Padding: `dynamic=True` cuts every batch to its longest row (what `DataCollatorWithPadding` does
for transformers users); `dynamic=False` pads every row to `max_length`. NER: a word's label sits
on its first word-piece (-100 elsewhere); words cut off by `max_length` are predicted "O".
"""

from __future__ import annotations

import math
import os
import sys
import time

import numpy as np

REFERENCE_SENTENCE = "Hello, my dog is cute"
REFERENCE_IDS = [101, 7592, 1010, 2026, 3899, 2003, 10140, 102]   # bert-base-uncased's ids


class BertAdamW:
    """google-research/bert's AdamWeightDecayOptimizer in PyTorch (the same update as bert_tf's
    AdamWeightDecay): m/v without bias correction, decoupled weight decay."""

    def __init__(self, named_parameters, lr_at, weight_decay=0.01, betas=(0.9, 0.999), eps=1e-6):
        import torch
        self.torch = torch
        self.params = [(n, p) for n, p in named_parameters if p.requires_grad]
        self.decay = {n: not any(k in n for k in ("LayerNorm", "bias")) for n, _ in self.params}
        self.state = {n: (torch.zeros_like(p), torch.zeros_like(p)) for n, p in self.params}
        self.lr_at, self.wd, self.betas, self.eps, self.step_count = lr_at, weight_decay, betas, eps, 0

    def step(self):
        lr = self.lr_at(self.step_count)
        b1, b2 = self.betas
        with self.torch.no_grad():
            for name, p in self.params:
                if p.grad is None:
                    continue
                m, v = self.state[name]
                m.mul_(b1).add_(p.grad, alpha=1 - b1)
                v.mul_(b2).addcmul_(p.grad, p.grad, value=1 - b2)
                update = m / (v.sqrt() + self.eps)
                if self.decay[name]:
                    update = update + self.wd * p
                p.sub_(lr * update)
        self.step_count += 1


def lr_schedule(peak: float, total: int, warmup: int):
    def lr_at(step):
        if step < warmup:
            return peak * step / warmup
        return peak * (1.0 - min(step, total) / total)
    return lr_at


def check_reference_ids(tokenizer) -> None:
    """bert-base-uncased's vocabulary loaded (not transformers' 5-token fallback)."""
    got = tokenizer(REFERENCE_SENTENCE)["input_ids"]
    if got != REFERENCE_IDS:
        raise RuntimeError(f"transformers tokenizer gives {got} for {REFERENCE_SENTENCE!r}, "
                           f"expected {REFERENCE_IDS} (vocab not loaded?)")


def torch_features(task: str, tokenizer, path: str, label_names, max_length: int):
    """HF tokenization of a classification CSV (`task` "classify") or CoNLL file ("ner"), padded to
    `max_length`: ({input_ids, token_type_ids, attention_mask, labels} tensors [n, max_length]
    (labels [n] for classify), gold labels, word ids per sentence (None for classify))."""
    import torch
    from bert_tf.data.classification import read_classification
    from bert_tf.data.conll import read_conll
    if task == "classify":
        data = read_classification(path, label_names=label_names)
        enc = tokenizer(data.texts, max_length=max_length, truncation=True, padding="max_length",
                        return_tensors="pt")
        enc["labels"] = torch.tensor(data.labels)
        return enc, data.labels, None
    sentences = read_conll(path, label_names=label_names)
    enc = tokenizer([tokens for tokens, _ in sentences], is_split_into_words=True,
                    max_length=max_length, truncation=True, padding="max_length")
    index = {name: i for i, name in enumerate(label_names)}
    labels, word_ids = [], []
    for i, (_, tags) in enumerate(sentences):
        ids, previous, row = enc.word_ids(i), None, []
        for w in ids:
            row.append(-100 if w is None or w == previous else index[tags[w]])
            previous = w
        labels.append(row)
        word_ids.append(ids)
    tensors = {k: torch.tensor(v) for k, v in enc.items()}
    tensors["labels"] = torch.tensor(labels)
    return tensors, [tags for _, tags in sentences], word_ids


def cut_to_longest(batch: dict) -> dict:
    """Dynamic padding: the batch's [b, max_length] tensors cut after its longest row (the
    columns past it are padding in every row, masked out, and labelled -100 for NER)."""
    width = max(int(batch["attention_mask"].sum(dim=1).max()), 1)
    # .contiguous(): a column slice is a strided view, which BertForTokenClassification's
    # `labels.view(-1)` refuses; DataCollatorWithPadding hands out fresh (contiguous) tensors.
    return {k: (v[:, :width].contiguous() if v.dim() == 2 else v) for k, v in batch.items()}


def torch_score(task, model, features, gold, word_ids, label_names, batch_size=64,
                dynamic=True):
    """Test/dev metrics: accuracy etc. (classify) or seqeval entity F1 (ner)."""
    import torch
    from bert_tf import metrics
    model.eval()
    n, width = features["input_ids"].shape
    predicted = np.zeros((n,) if task == "classify" else (n, width), np.int64)
    with torch.no_grad():
        for s in range(0, n, batch_size):
            batch = {k: v[s:s + batch_size] for k, v in features.items() if k != "labels"}
            if dynamic:
                batch = cut_to_longest(batch)
            best = model(**batch).logits.argmax(-1).numpy()
            if task == "classify":
                predicted[s:s + batch_size] = best
            else:
                predicted[s:s + batch_size, :best.shape[1]] = best
    if task == "classify":
        return metrics.classification_metrics(np.asarray(gold), predicted)
    tags = []
    for i, sentence in enumerate(gold):
        first = {}
        for position, w in enumerate(word_ids[i]):
            if w is not None and w not in first:
                first[w] = position
        tags.append([label_names[predicted[i, first[w]]] if w in first else "O"
                     for w in range(len(sentence))])
    return metrics.entity_metrics(gold, tags)


def finetune_torch(task: str, init: str, paths: dict, label_names, *, max_length: int,
                   epochs: float, batch_size: int, learning_rate: float, warmup: float, seed: int,
                   dynamic: bool = True, start=None, dropout_seed: int | None = None,
                   log=None, save_to: str | None = None) -> dict:
    """Fine-tunes the transformers checkpoint `init` on paths["train"] (scoring paths["dev"] after
    each epoch) and scores the best epoch on paths["test"].

    start: None (the head drawn by torch from `seed`, batches from a torch shuffle) or
      (kernel [hidden, labels], bias [labels], order [steps, batch_size] example indices): the
      head and batches bert_tf starts from, for paired runs.
    Returns {dev, test, best_step, steps, seconds (set-up to the last epoch's dev score),
    epoch_seconds (training time of each epoch, dev scoring excluded)}."""
    import torch
    import transformers

    from bert_tf.benchmarks.peers import hf_tokenizer
    log = log or (lambda line: print(line, file=sys.stderr, flush=True))
    torch.manual_seed(seed)
    tokenizer = hf_tokenizer(os.path.join(init, "vocab.txt"))
    check_reference_ids(tokenizer)
    cls = transformers.BertForSequenceClassification if task == "classify" \
        else transformers.BertForTokenClassification
    started = time.perf_counter()
    model = cls.from_pretrained(init, num_labels=len(label_names))
    train, _, _ = torch_features(task, tokenizer, paths["train"], label_names, max_length)
    dev = torch_features(task, tokenizer, paths["dev"], label_names, max_length)
    n = train["input_ids"].shape[0]
    per_epoch = math.ceil(n / batch_size)
    total = max(1, math.ceil(per_epoch * epochs))
    optimizer = BertAdamW(model.named_parameters(),
                          lr_schedule(learning_rate, total, int(warmup * total)))
    if start is not None:
        kernel, bias, batches = start
        with torch.no_grad():
            model.classifier.weight.copy_(torch.from_numpy(kernel.T))
            model.classifier.bias.copy_(torch.from_numpy(bias))
        order = torch.from_numpy(batches.reshape(-1).astype(np.int64))
    else:
        generator = torch.Generator().manual_seed(seed)
        order = torch.cat([torch.randperm(n, generator=generator)
                           for _ in range(math.ceil(total * batch_size / n) + 1)])
    if dropout_seed is not None:
        torch.manual_seed(dropout_seed)   # the head is drawn and the order fixed: dropout alone
    best, best_state, best_step = None, None, None
    metric = "accuracy" if task == "classify" else "f1"
    epoch_seconds, epoch_started = [], time.perf_counter()
    for step in range(total):
        model.train()
        index = order[step * batch_size:(step + 1) * batch_size]
        batch = {k: v[index] for k, v in train.items()}
        loss = model(**(cut_to_longest(batch) if dynamic else batch)).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        model.zero_grad(set_to_none=True)
        if (step + 1) % per_epoch == 0 or step + 1 == total:
            epoch_seconds.append(time.perf_counter() - epoch_started)
            scores = torch_score(task, model, dev[0], dev[1], dev[2], label_names,
                                 dynamic=dynamic)
            log(f"[torch] step {step + 1}/{total} loss {loss.item():.4f} dev {metric} "
                f"{scores[metric]:.4f} ({epoch_seconds[-1]:.1f} s training)")
            if best is None or scores[metric] > best[metric]:
                best, best_step = scores, step + 1
                best_state = {k: v.clone() for k, v in model.state_dict().items()}
            epoch_started = time.perf_counter()
    seconds = time.perf_counter() - started
    model.load_state_dict(best_state)
    test = torch_features(task, tokenizer, paths["test"], label_names, max_length)
    test_scores = torch_score(task, model, test[0], test[1], test[2], label_names,
                              dynamic=dynamic)
    if save_to is not None:
        # The best model as transformers users keep a fine-tuned one (what `bert-tf import`
        # reads): named labels, the tokenizer truncating at the recipe's length.
        model.config.id2label = dict(enumerate(label_names))
        model.config.label2id = {name: i for i, name in enumerate(label_names)}
        model.save_pretrained(save_to)
        tokenizer.model_max_length = max_length
        tokenizer.save_pretrained(save_to)
    return {"dev": best, "test": test_scores, "best_step": best_step, "steps": total,
            "seconds": seconds, "epoch_seconds": epoch_seconds}
