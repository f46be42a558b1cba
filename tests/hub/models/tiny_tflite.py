"""A tiny, real LiteRT model for the rollout tests: sigmoid(w . x + b), built without TensorFlow.

The hub's model store treats any model the same way (inputs in, one probability out); these tests
need models whose answers they control (a good one and one that fails its self-test), which the
committed triage artifact cannot give. Built with the flatbuffer schema shipped in ai-edge-litert.
"""

from __future__ import annotations

import math
import struct

import flatbuffers
from ai_edge_litert import schema_py_generated as s


def logistic_model(weights: list[float], bias: float) -> bytes:
    """The .tflite bytes of y = sigmoid(weights . x + bias), input float32[1, n], output [1, 1]."""
    n = len(weights)
    model = s.ModelT()
    model.version = 3
    model.description = "tecsa test logistic model"
    buffers = [b"", b"", struct.pack(f"<{n}f", *weights), struct.pack("<f", bias), b"", b""]
    model.buffers = []
    for data in buffers:
        buf = s.BufferT()
        buf.data = list(data) if data else None
        model.buffers.append(buf)

    def tensor(name: str, shape: list[int], buffer: int) -> s.TensorT:
        t = s.TensorT()
        t.name = name
        t.shape = shape
        t.type = s.TensorType.FLOAT32
        t.buffer = buffer
        return t

    graph = s.SubGraphT()
    graph.tensors = [
        tensor("features", [1, n], 1),
        tensor("weights", [1, n], 2),
        tensor("bias", [1], 3),
        tensor("logit", [1, 1], 4),
        tensor("probability", [1, 1], 5),
    ]
    graph.inputs = [0]
    graph.outputs = [4]
    fc_code, sig_code = s.OperatorCodeT(), s.OperatorCodeT()
    fc_code.builtinCode = fc_code.deprecatedBuiltinCode = s.BuiltinOperator.FULLY_CONNECTED
    sig_code.builtinCode = sig_code.deprecatedBuiltinCode = s.BuiltinOperator.LOGISTIC
    fc_code.version = sig_code.version = 1
    model.operatorCodes = [fc_code, sig_code]
    fc, sig = s.OperatorT(), s.OperatorT()
    fc.opcodeIndex, fc.inputs, fc.outputs = 0, [0, 1, 2], [3]
    fc.builtinOptionsType = s.BuiltinOptions.FullyConnectedOptions
    fc.builtinOptions = s.FullyConnectedOptionsT()
    sig.opcodeIndex, sig.inputs, sig.outputs = 1, [3], [4]
    graph.operators = [fc, sig]
    graph.name = "main"
    model.subgraphs = [graph]
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def expected(weights: list[float], bias: float, inputs: list[float]) -> float:
    """What `logistic_model(weights, bias)` answers for `inputs`."""
    z = sum(w * x for w, x in zip(weights, inputs, strict=True)) + bias
    return 1.0 / (1.0 + math.exp(-z))
