"""A bounded serving soak (issue 17, item 7): thousands of gRPC Predict requests from 8 threads
against a tiny exported model behind the loopback PredictionService, a random mix of valid and
invalid inputs. Every valid request succeeds with the right shapes (and fixed inputs get exactly
the answer of a direct signature call); every invalid one is INVALID_ARGUMENT naming its field;
the process RSS after the first quarter (warm-up) grows by < 50 MB or < 10% up to the end."""

from __future__ import annotations

import collections
import os
import random
import threading
import time

import numpy as np
import pytest
import tensorflow as tf

from bert_tf import BertConfig, BertEncoder
from bert_tf.export import export_saved_model
from bert_tf.export.loopback_server import LoopbackPredictionServer
from bert_tf.models import BertClassifier
from bert_tf.text import BertTokenizer
from tests.reliability.outcomes import SilentWrong, Unclear

VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "good", "bad", "film", "the", "plot", "##s"]
V = len(VOCAB)
WORDS = ["good", "bad", "film", "the", "plot", "films", "zebra"]
REQUESTS, THREADS, DEADLINE_S = 8000, 8, 45.0


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    import keras
    keras.utils.set_random_seed(5)
    config = BertConfig(vocab_size=V, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=32, max_position_embeddings=16)
    model = BertClassifier(BertEncoder(config), num_classes=2)
    path = export_saved_model(model, tmp_path_factory.mktemp("soak") / "tiny",
                              tokenizer=BertTokenizer(VOCAB, sequence_length=12),
                              labels=["neg", "pos"])
    with LoopbackPredictionServer(path, model_name="tiny") as server:
        yield server


def request(signature, inputs):
    from tensorflow_serving.apis import predict_pb2
    r = predict_pb2.PredictRequest()
    r.model_spec.name = "tiny"
    r.model_spec.signature_name = signature
    for name, value in inputs.items():
        r.inputs[name].CopyFrom(tf.make_tensor_proto(value))
    return r


def ids(rng, batch, length=6, **bad):
    """serve_ids inputs (int32 [batch, length]); bad: name=value put at one random element."""
    out = {"input_ids": rng.integers(0, V, (batch, length)).astype(np.int32),
           "token_type_ids": rng.integers(0, 2, (batch, length)).astype(np.int32),
           "attention_mask": np.ones((batch, length), np.int32)}
    for name, value in bad.items():
        if not -2**31 <= value < 2**31:      # sent as int64 (TF Serving refuses the dtype)
            out[name] = out[name].astype(np.int64)
        out[name][rng.integers(batch), rng.integers(length)] = value
    return out


def request_pool(rng):
    """(kind, request, expected field or batch size) — built once, sent many times: building
    TensorProtos is slower than serving them."""
    pool = []
    for _ in range(40):
        batch = int(rng.integers(1, 5))
        texts = np.array([" ".join(rng.choice(WORDS, rng.integers(1, 9))).encode()
                          for _ in range(batch)], dtype=object)
        pool.append(("valid text", request("serving_default", {"text": texts}), batch))
        pool.append(("valid ids", request("serve_ids", ids(rng, batch)), batch))
    invalid = [("id -1", {"input_ids": -1}, "input_ids"), ("id V", {"input_ids": V}, "input_ids"),
               ("id 2^32+3", {"input_ids": 2**32 + 3}, "input_ids"),
               ("type id 2", {"token_type_ids": 2}, "token_type_ids"),
               ("mask 3", {"attention_mask": 3}, "attention_mask")]
    for _ in range(8):
        for kind, bad, field in invalid:
            pool.append((f"invalid {kind}", request("serve_ids", ids(rng, 2, **bad)), field))
    pool.append(("invalid zero length", request("serve_ids", ids(rng, 2, length=0)), "input_ids"))
    pool.append(("invalid text rank 2", request("serving_default", {
        "text": np.array([[b"good", b"film"]], dtype=object)}), "text"))
    pool.append(("invalid missing input", request("serve_ids", {
        k: v for k, v in ids(rng, 1).items() if k != "attention_mask"}), "attention_mask"))
    return pool


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


@pytest.mark.slow
@pytest.mark.expect("OK")
def test_soak(served):
    import grpc
    from tensorflow_serving.apis import prediction_service_pb2_grpc

    rng = np.random.default_rng(0)
    pool = request_pool(rng)
    fixed = [p for p in pool if p[0] == "valid ids"][:3]
    signature = served.loaded.signatures["serve_ids"]
    reference = [signature(**{k: tf.make_ndarray(v) for k, v in r.inputs.items()})["logits"]
                 .numpy() for _, r, _ in fixed]

    counts = collections.Counter()
    refused = collections.Counter()     # request kind -> errors answered
    problems = []
    rss = []
    done = [0]
    lock = threading.Lock()
    began = time.monotonic()

    def worker(seed):
        local = random.Random(seed)
        with grpc.insecure_channel(served.address) as channel:
            stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
            while time.monotonic() - began < DEADLINE_S:
                with lock:
                    if done[0] >= REQUESTS:
                        return
                    done[0] += 1
                    if done[0] % (REQUESTS // 4) == 0:
                        rss.append(rss_mb())
                kind, req, expected = local.choice(pool)
                try:
                    response = stub.Predict(req, timeout=30)
                except grpc.RpcError as e:
                    with lock:
                        counts[f"{e.code().name}"] += 1
                        refused[kind] += 1
                    if not kind.startswith("invalid"):
                        problems.append(SilentWrong(f"{kind}: {e.code().name} {e.details()}"))
                    elif e.code() != grpc.StatusCode.INVALID_ARGUMENT or expected not in e.details():
                        problems.append(Unclear(f"{kind}: {e.code().name}: {e.details()}"))
                    continue
                with lock:
                    counts["OK"] += 1
                if kind.startswith("invalid"):
                    problems.append(SilentWrong(f"{kind}: answered instead of refused"))
                    continue
                shape = tuple(tf.make_ndarray(response.outputs["logits"]).shape)
                if shape != (expected, 2):
                    problems.append(SilentWrong(f"{kind}: logits shape {shape}"))

    rss.append(rss_mb())   # before the first request
    threads = [threading.Thread(target=worker, args=(i,)) for i in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    seconds = time.monotonic() - began
    with grpc.insecure_channel(served.address) as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        for (_, req, _), want in zip(fixed, reference):
            got = tf.make_ndarray(stub.Predict(req, timeout=30).outputs["logits"])
            np.testing.assert_array_equal(got, want)      # same graph, same answer
    total = sum(counts.values())
    print(f"\nsoak: {total} requests from {THREADS} threads in {seconds:.1f} s "
          f"({total / seconds:.0f}/s); answers {dict(counts)}; errors by kind "
          f"{dict(sorted(refused.items()))}; RSS MB before "
          f"{rss[0]:.0f}, after each quarter {[round(r) for r in rss[1:]]}")
    if problems:
        raise problems[0]
    assert total >= 1000, f"only {total} requests in {DEADLINE_S} s"
    assert counts["OK"] > 0 and counts["INVALID_ARGUMENT"] > 0
    warm, end = rss[1], rss[-1]
    assert end - warm < 50 or end - warm < 0.1 * warm, f"RSS grew {warm:.0f} → {end:.0f} MB"
