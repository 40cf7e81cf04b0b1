"""`assets.extra/tf_serving_warmup_requests`: a TFRecord file of tensorflow-serving-api
`PredictionLog` protos that TF Serving replays before it marks a version available, so the first
real request does not pay for graph initialization (`--enable_model_warmup`, on by default)."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

WARMUP_FILE = "tf_serving_warmup_requests"


def predict_request(model_name: str, inputs: dict, signature_name: str = "serving_default"):
    """A tensorflow_serving PredictRequest with numpy/str inputs turned into TensorProtos."""
    from tensorflow_serving.apis import predict_pb2
    request = predict_pb2.PredictRequest()
    request.model_spec.name = model_name
    request.model_spec.signature_name = signature_name
    for name, value in inputs.items():
        if isinstance(value, (list, tuple)) and value and isinstance(value[0], str):
            value = np.array([v.encode("utf-8") for v in value], dtype=object)
        request.inputs[name].CopyFrom(tf.make_tensor_proto(value))
    return request


def write_warmup_requests(path: str, model_name: str, requests: list) -> int:
    """Writes [(signature_name, inputs dict)] as PredictionLog records; returns the count."""
    from tensorflow_serving.apis import prediction_log_pb2
    with tf.io.TFRecordWriter(path) as writer:
        for signature_name, inputs in requests:
            log = prediction_log_pb2.PredictionLog(
                predict_log=prediction_log_pb2.PredictLog(
                    request=predict_request(model_name, inputs, signature_name)))
            writer.write(log.SerializeToString())
    return len(requests)


def read_warmup_requests(path: str) -> list:
    """The PredictionLog protos in a warmup file (parsing fails loudly on anything else)."""
    from tensorflow_serving.apis import prediction_log_pb2
    logs = []
    for record in tf.data.TFRecordDataset(path):
        log = prediction_log_pb2.PredictionLog()
        log.ParseFromString(record.numpy())
        if not log.HasField("predict_log"):
            raise ValueError(f"{path}: record {len(logs)} is not a predict_log")
        logs.append(log)
    return logs
