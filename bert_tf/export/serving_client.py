"""Client helpers for a served bert_tf model: gRPC `PredictRequest`s (tensorflow-serving-api
protos) and REST JSON bodies in TF Serving's documented formats.

    request = predict_request("sentiment", {"text": ["A fine film."]})
    outputs = grpc_predict("localhost:8500", request)          # {"probabilities": array, ...}

REST (`POST /v1/models/<name>:predict`, or `.../versions/<n>:predict`):
    row format      {"signature_name": "serving_default", "instances": [{"text": "A fine film."}]}
                    -> {"predictions": [{"probabilities": [...], "labels": "fresh", ...}]}
    columnar format {"signature_name": "serving_default", "inputs": {"text": ["A fine film."]}}
                    -> {"outputs": {"probabilities": [[...]], "labels": ["fresh"], ...}}
A signature with a single input may also take bare values: {"instances": ["A fine film."]}.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from bert_tf.export.warmup import predict_request  # noqa: F401  (re-exported: the client API)


def response_to_numpy(response) -> dict:
    """PredictResponse -> {output name: numpy array} (strings as bytes objects)."""
    return {name: tf.make_ndarray(proto) for name, proto in response.outputs.items()}


def grpc_predict(address: str, request, timeout: float = 30.0) -> dict:
    """Sends `request` to a PredictionService at `address` ("host:port"); returns numpy outputs."""
    import grpc
    from tensorflow_serving.apis import prediction_service_pb2_grpc
    with grpc.insecure_channel(address) as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        return response_to_numpy(stub.Predict(request, timeout=timeout))


def rest_request(inputs: dict, signature_name: str = "serving_default", columnar: bool = False) -> dict:
    """A REST predict body: row format ("instances", one dict per example) or columnar ("inputs")."""
    inputs = {k: _jsonable(v) for k, v in inputs.items()}
    if columnar:
        return {"signature_name": signature_name, "inputs": inputs}
    sizes = {len(v) for v in inputs.values()}
    if len(sizes) != 1:
        raise ValueError(f"row format needs every input to have the same batch size, got {sizes}")
    n = sizes.pop()
    instances = [{k: v[i] for k, v in inputs.items()} for i in range(n)]
    return {"signature_name": signature_name, "instances": instances}


def rest_inputs(body: dict, input_names) -> dict:
    """What a REST body asks for, as numpy batches keyed by signature input (the server side of
    `rest_request`, following TF Serving's rules: exactly one of instances/inputs)."""
    if ("instances" in body) == ("inputs" in body):
        raise ValueError('a predict body needs exactly one of "instances" (row) or "inputs" (columnar)')
    input_names = list(input_names)
    if "inputs" in body:
        columns = body["inputs"]
        if not isinstance(columns, dict):
            if len(input_names) != 1:
                raise ValueError(f'"inputs" must name the inputs {input_names}')
            columns = {input_names[0]: columns}
    else:
        rows = body["instances"]
        if not isinstance(rows, list):
            raise ValueError('"instances" must be a list')
        if rows and not isinstance(rows[0], dict):
            if len(input_names) != 1:
                raise ValueError(f"bare instances need a single-input signature, not {input_names}")
            rows = [{input_names[0]: r} for r in rows]
        columns = {name: [row[name] for row in rows] for name in input_names}
    missing = sorted(set(input_names) - set(columns))
    if missing:
        raise ValueError(f"missing input(s) {missing}")
    return {name: np.asarray(columns[name], dtype=object if _is_text(columns[name]) else None)
            for name in input_names}


def rest_response(outputs: dict, columnar: bool) -> dict:
    """Signature outputs -> the response body TF Serving sends for that request format."""
    outputs = {k: _jsonable(np.asarray(v)) for k, v in outputs.items()}
    if columnar:
        return {"outputs": outputs}
    n = len(next(iter(outputs.values()))) if outputs else 0
    return {"predictions": [{k: v[i] for k, v in outputs.items()} for i in range(n)]}


def _is_text(values) -> bool:
    flat = np.asarray(values, dtype=object).ravel()
    return flat.size > 0 and isinstance(flat[0], (str, bytes))


def _jsonable(value):
    array = np.asarray(value, dtype=object if _is_text(value) else None)
    if array.dtype == object:
        return np.vectorize(lambda s: s.decode("utf-8") if isinstance(s, bytes) else s,
                            otypes=[object])(array).tolist() if array.size else array.tolist()
    return array.tolist()
