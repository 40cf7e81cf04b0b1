"""A gRPC `tensorflow.serving.PredictionService` in-process, serving a SavedModel version dir.

No TF Serving binary exists here, so this server proves the client side and the wire format: it
speaks tensorflow-serving-api's protos over real gRPC on 127.0.0.1, looks up the signature the
request names (TF Serving's default: serving_default), and answers like the model server does
(inputs as TensorProtos, `output_filter`, model_spec echoed with the version).

    with LoopbackPredictionServer(version_dir, model_name="sentiment") as server:
        grpc_predict(server.address, predict_request("sentiment", {"text": [...]}))
"""

from __future__ import annotations

import os
from concurrent import futures

import tensorflow as tf


class LoopbackPredictionServer:
    def __init__(self, version_dir: str, model_name: str, host: str = "127.0.0.1"):
        import tensorflow_text  # noqa: F401  (registers the tokenizer's ops before loading)
        self.model_name = model_name
        self.version = int(os.path.basename(os.path.normpath(version_dir)))
        self.loaded = tf.saved_model.load(version_dir)
        self.host = host
        self._server = None
        self.port = None

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def predict(self, request, context=None):
        import grpc
        from tensorflow_serving.apis import predict_pb2

        def fail(code, message):
            if context is None:
                raise ValueError(message)
            context.abort(code, message)

        if request.model_spec.name != self.model_name:
            fail(grpc.StatusCode.NOT_FOUND, f"Servable not found for request: "
                                            f"Latest({request.model_spec.name})")
        name = request.model_spec.signature_name or "serving_default"
        if name not in self.loaded.signatures:
            fail(grpc.StatusCode.INVALID_ARGUMENT, f"Serving signature name: \"{name}\" not found "
                                                   f"in signature def")
        signature = self.loaded.signatures[name]
        expected = set(signature.structured_input_signature[1])
        given = set(request.inputs)
        if given != expected:
            fail(grpc.StatusCode.INVALID_ARGUMENT,
                 f"input keys {sorted(given)} do not match the signature's {sorted(expected)}")
        # TF Serving refuses a tensor of another dtype than the signature's; converting it here
        # would wrap an int64 id 2**32 + k to k.
        specs = signature.structured_input_signature[1]
        for key in sorted(given):
            dtype = tf.dtypes.as_dtype(request.inputs[key].dtype)
            if dtype != specs[key].dtype:
                fail(grpc.StatusCode.INVALID_ARGUMENT, f"{key}: expects {specs[key].dtype.name} "
                                                       f"but {dtype.name} is provided")
        try:
            outputs = signature(**{k: tf.make_ndarray(v) for k, v in request.inputs.items()})
        except (tf.errors.InvalidArgumentError, ValueError, TypeError) as e:
            # The whole message, as TF Serving sends it: a graph's check starts with "Graph
            # execution error:" and names the field further down.
            fail(grpc.StatusCode.INVALID_ARGUMENT, str(e).strip())
        wanted = list(request.output_filter) or list(outputs)
        unknown = sorted(set(wanted) - set(outputs))
        if unknown:
            fail(grpc.StatusCode.INVALID_ARGUMENT, f"output_filter names unknown outputs {unknown}")
        response = predict_pb2.PredictResponse()
        response.model_spec.name = self.model_name
        response.model_spec.signature_name = name
        response.model_spec.version.value = self.version
        for key in wanted:
            response.outputs[key].CopyFrom(tf.make_tensor_proto(outputs[key].numpy()))
        return response

    def start(self) -> "LoopbackPredictionServer":
        import grpc
        from tensorflow_serving.apis import prediction_service_pb2_grpc

        server_self = self

        class Servicer(prediction_service_pb2_grpc.PredictionServiceServicer):
            def Predict(self, request, context):  # noqa: N802 (gRPC method name)
                return server_self.predict(request, context)

        self._server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
        prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(Servicer(), self._server)
        self.port = self._server.add_insecure_port(f"{self.host}:0")
        if not self.port:
            raise RuntimeError(f"could not bind a port on {self.host}")
        self._server.start()
        return self

    def stop(self):
        if self._server is not None:
            self._server.stop(grace=None)
            self._server = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
        return False
