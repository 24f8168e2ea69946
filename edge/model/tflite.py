"""Run a TFLite model on the station (LiteRT): named float inputs in, named float outputs out.

:class:`TfliteRunner` has the interface of :class:`edge.model.inference.OnnxRunner` (``input_names``,
``output_names``, ``run(inputs) -> dict``), so :class:`edge.model.inference.WindowPredictor` runs a
TFLite graph exactly as it runs an ONNX one:

* names are the model's first signature's input/output names (``x``, ``log_peak``, ``noise``
  -> ``class_probs``, ``mag_probs`` for a ``microseis export --tflite`` graph); a model
  without signatures uses the tensor names of its main subgraph;
* any batch size: a graph with a fixed batch (litert-torch exports one, e.g. 1) is run in
  chunks of that batch -- the last chunk padded by repeating its last row, the padding
  dropped from the outputs; a graph with a dynamic batch (-1 in its shape signature) is
  resized to the rows given;
* int8/uint8 inputs are quantized from float with their scale and zero point, and int8/uint8
  outputs dequantized to float32 the same way (static int8 graphs from litert-torch's PT2E
  path take float inputs but return int8 outputs).

The interpreter is ``ai_edge_litert.interpreter`` (``pip install ai-edge-litert``: works with
numpy 2), else ``tflite_runtime.interpreter`` (``pip install tflite-runtime``: numpy < 2 only,
cannot run some int8 op versions, slower). No torch.
"""
from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["TfliteRunner", "load_interpreter_class", "TFLITE_MISSING"]

#: the error text when neither interpreter package is installed
TFLITE_MISSING = ("running a TFLite model needs a LiteRT interpreter: pip install ai-edge-litert "
                  "(the 'tflite' extra), or tflite-runtime where that is all the board has")


def load_interpreter_class() -> type:
    """``Interpreter`` of ai-edge-litert, else of tflite-runtime; ``ImportError`` naming both
    packages when neither is installed."""
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        try:
            from tflite_runtime.interpreter import Interpreter  # type: ignore[no-redef]
        except ImportError:
            raise ImportError(TFLITE_MISSING) from None
    return Interpreter


def _quant(detail: Mapping[str, Any]) -> tuple[float, int]:
    """(scale, zero point) of a tensor detail; scale 0.0 when it is not quantized."""
    scale, zero = detail.get("quantization", (0.0, 0)) or (0.0, 0)
    return float(scale), int(zero)


def _to_input(value: np.ndarray, detail: Mapping[str, Any]) -> np.ndarray:
    """``value`` as the tensor's dtype: quantized with (scale, zero point) for an integer
    tensor that carries them, else a plain cast."""
    dtype = np.dtype(detail["dtype"])
    arr = np.asarray(value)
    scale, zero = _quant(detail)
    if np.issubdtype(dtype, np.integer) and scale and not np.issubdtype(arr.dtype, np.integer):
        info = np.iinfo(dtype)
        q = np.round(arr.astype(np.float32) / np.float32(scale)) + zero
        return np.ascontiguousarray(np.clip(q, info.min, info.max).astype(dtype))
    return np.ascontiguousarray(arr, dtype=dtype)


def _from_output(value: np.ndarray, detail: Mapping[str, Any]) -> np.ndarray:
    """An output tensor as float32 when it is quantized (``(q - zero) * scale``), else as is
    (a copy: the interpreter reuses its buffers)."""
    arr = np.array(value)
    scale, zero = _quant(detail)
    if scale and np.issubdtype(arr.dtype, np.integer):
        return ((arr.astype(np.float32) - np.float32(zero)) * np.float32(scale)).astype(np.float32)
    return arr


class TfliteRunner:
    """One TFLite model in a LiteRT interpreter on the CPU.

    Args:
        model: the ``.tflite`` bytes, or a path to the file.
        threads: interpreter threads (1 on a station that runs other work).

    Attributes:
        input_names, output_names: the names :meth:`run` takes and returns.
        batch: the graph's fixed batch size, or None when its batch is dynamic.
        input_details, output_details: name -> the interpreter's tensor detail (``shape``,
            ``dtype``, ``quantization`` = (scale, zero point), ``index``).
    """

    def __init__(self, model: bytes | str | os.PathLike, threads: int = 1) -> None:
        Interpreter = load_interpreter_class()
        content = bytes(model) if isinstance(model, (bytes, bytearray, memoryview)) else Path(model).read_bytes()
        self.interpreter = Interpreter(model_content=content, num_threads=max(1, int(threads)))
        # allocate before a signature runner exists: afterwards ai-edge-litert refuses to
        # (the runner holds references to the interpreter's buffers)
        self.interpreter.allocate_tensors()
        sigs = self.interpreter.get_signature_list() if hasattr(self.interpreter, "get_signature_list") else {}
        self.signature: str | None = next(iter(sigs)) if sigs else None
        self._runner = None
        if self.signature is not None:
            self._runner = self.interpreter.get_signature_runner(self.signature)
            self.input_details = dict(self._runner.get_input_details())
            self.output_details = dict(self._runner.get_output_details())
            # names in the signature's own order (get_signature_list keeps the model's order)
            self.input_names = [n for n in sigs[self.signature]["inputs"]]
            self.output_names = [n for n in sigs[self.signature]["outputs"]]
        else:
            self.input_details = {d["name"]: d for d in self.interpreter.get_input_details()}
            self.output_details = {d["name"]: d for d in self.interpreter.get_output_details()}
            self.input_names = list(self.input_details)
            self.output_names = list(self.output_details)
        self.batch = self._fixed_batch()
        # Fast path: a signature on the main subgraph is run with set_tensor/invoke on the
        # interpreter itself (no resize + allocate per call, as the signature runner does).
        main_inputs = {d["index"] for d in self.interpreter.get_input_details()}
        main_outputs = {d["index"] for d in self.interpreter.get_output_details()}
        self._direct = self.batch is not None and (
            self._runner is None
            or ({d["index"] for d in self.input_details.values()} == main_inputs
                and {d["index"] for d in self.output_details.values()} <= main_outputs))
        if self._direct and self._runner is not None:
            # a live signature runner keeps references to the interpreter's buffers, and
            # ai-edge-litert then refuses invoke(): the fast path does not need it
            self._runner = None
            import gc

            gc.collect()

    def _fixed_batch(self) -> int | None:
        """The common fixed first dimension of all inputs, None when any is dynamic."""
        sizes = set()
        for d in self.input_details.values():
            sig = d.get("shape_signature")
            shape = d["shape"] if sig is None else sig
            if len(shape) == 0 or int(shape[0]) < 0:
                return None
            sizes.add(int(d["shape"][0]))
        return sizes.pop() if len(sizes) == 1 else None

    def _invoke(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """One interpreter call on rows the graph takes as they are."""
        if self._direct:
            return self._direct_run(feeds)
        if self._runner is not None:
            raw = self._runner(**feeds)
            return {n: _from_output(raw[n], self.output_details[n]) for n in self.output_names}
        # no signature, dynamic batch: resize the main subgraph
        for name, value in feeds.items():
            self.interpreter.resize_tensor_input(self.input_details[name]["index"], list(value.shape))
        self.interpreter.allocate_tensors()
        return self._direct_run(feeds)

    def _direct_run(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """set_tensor / invoke / get_tensor on the main subgraph as allocated now."""
        for name, value in feeds.items():
            self.interpreter.set_tensor(self.input_details[name]["index"], value)
        self.interpreter.invoke()
        return {n: _from_output(self.interpreter.get_tensor(self.output_details[n]["index"]),
                                self.output_details[n]) for n in self.output_names}

    def run(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Outputs for ``inputs`` (name -> array with the batch first; float arrays for int8
        inputs are quantized here). Names the graph does not take are ignored; every graph
        input must be given. Integer outputs come back dequantized as float32."""
        missing = [n for n in self.input_names if n not in inputs]
        if missing:
            raise ValueError(f"TFLite model needs inputs {missing} (takes {self.input_names})")
        feeds = {n: _to_input(inputs[n], self.input_details[n]) for n in self.input_names}
        rows = {v.shape[0] if v.ndim else 1 for v in feeds.values()}
        if len(rows) != 1:
            raise ValueError(f"inputs disagree on the batch size: "
                             f"{ {n: v.shape for n, v in feeds.items()} }")
        n = rows.pop()
        b = self.batch
        if n == 0:
            return {k: np.zeros((0, *self.output_details[k]["shape"][1:]), np.float32)
                    for k in self.output_names}
        if b is None or n == b:
            return self._invoke(feeds)
        for name, v in feeds.items():
            want = tuple(int(s) for s in self.input_details[name]["shape"][1:])
            if tuple(v.shape[1:]) != want:
                raise ValueError(f"input {name!r} has shape {list(v.shape)}, the graph takes "
                                 f"[B, {', '.join(map(str, want))}]")
        parts: list[dict[str, np.ndarray]] = []
        for s in range(0, n, b):
            chunk = {k: v[s:s + b] for k, v in feeds.items()}
            got = chunk[self.input_names[0]].shape[0]
            if got < b:  # pad the last chunk with copies of its last row
                chunk = {k: np.concatenate([v, np.repeat(v[-1:], b - got, axis=0)]) for k, v in chunk.items()}
            out = self._invoke(chunk)
            parts.append({k: v[:got] for k, v in out.items()})
        return {k: np.concatenate([p[k] for p in parts]) for k in self.output_names}
