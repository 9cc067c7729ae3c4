"""The network the tasks call for an ONNX package: an onnxruntime session behind a torch
module, on the CPU provider, or the CUDA provider of the run's GPU when onnxruntime has it."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from inference.onnx_model import OnnxError, check_graph

CPU_PROVIDER = "CPUExecutionProvider"
CUDA_PROVIDER = "CUDAExecutionProvider"


def providers_for(device: str, available: Sequence[str]) -> list[Any]:
    """The onnxruntime providers a session for a run on torch ``device`` asks for, best
    first. "cuda"/"cuda:N": the CUDA provider on that GPU (device_id N) when this
    onnxruntime has it, the CPU provider after it (for operators CUDA lacks); otherwise
    (cpu, mps, or an onnxruntime without CUDA) the CPU provider alone."""
    if device.startswith("cuda") and CUDA_PROVIDER in available:
        index = device.partition(":")[2] or "0"
        if not index.isdigit():
            raise OnnxError(f"cannot run an ONNX model on device {device!r}")
        return [(CUDA_PROVIDER, {"device_id": int(index)}), CPU_PROVIDER]
    return [CPU_PROVIDER]


def session_key(device: str, available: Sequence[str]) -> str:
    """Which session serves a run on ``device``: "cuda:N" when the CUDA provider is there
    (one session per GPU), else "cpu" (this onnxruntime runs it on the CPU)."""
    if device.startswith("cuda") and CUDA_PROVIDER in available:
        return device if ":" in device else "cuda:0"
    return "cpu"


def load_onnx_network(card: Any, path: Path) -> Any:
    """The checked graph as a torch ``nn.Module`` the tasks call like any network (input and
    output torch tensors); OnnxError when the graph is refused or onnxruntime cannot load it."""
    facts = check_graph(card, path)
    cls = _network_class()
    return cls(path, card.network["onnx"]["input"], card.network["onnx"]["output"], facts)


_CLASS: Any = None


def _network_class() -> Any:
    global _CLASS
    if _CLASS is not None:
        return _CLASS
    import torch

    class OnnxNetwork(torch.nn.Module):
        """An onnxruntime session behind ``nn.Module``'s call: numpy in, numpy out, on the
        input's device (a CUDA tensor runs on the CUDA provider when onnxruntime has it)."""

        def __init__(self, path: Path, input_name: str, output_name: str, facts: dict) -> None:
            super().__init__()
            self.path, self.input_name, self.output_name = Path(path), input_name, output_name
            self.facts = facts
            #: per session key, the providers onnxruntime actually gave it, best first
            self.providers_used: dict[str, list[str]] = {}
            self._sessions: dict[str, Any] = {"cpu": self._session("cpu")}

        def _session(self, device: str) -> Any:
            import onnxruntime as ort

            opts = ort.SessionOptions()
            opts.intra_op_num_threads = max(1, torch.get_num_threads())
            opts.inter_op_num_threads = 1
            opts.log_severity_level = 3
            providers = providers_for(device, ort.get_available_providers())
            try:
                session = ort.InferenceSession(str(self.path), opts, providers=providers)
            except Exception as exc:  # noqa: BLE001 - onnxruntime's own refusal, in a sentence
                raise OnnxError(
                    f"{self.path}: onnxruntime cannot load this graph ({type(exc).__name__}:"
                    f" {str(exc)[:300]})"
                ) from exc
            used = list(session.get_providers())
            if device != "cpu" and CUDA_PROVIDER not in used[:1]:
                # onnxruntime drops a provider it cannot start (no CUDA libraries) silently.
                logging.getLogger(__name__).warning(
                    "%s: onnxruntime runs this graph on %s, not the CUDA provider",
                    self.path,
                    ", ".join(used),
                )
            self.providers_used[device] = used
            return session

        def session_for(self, device: str) -> Any:
            """The session for a run on torch ``device`` (made on first use, one per GPU)."""
            import onnxruntime as ort

            key = session_key(device, ort.get_available_providers())
            if key not in self._sessions:
                self._sessions[key] = self._session(key)
            return self._sessions[key]

        def forward(self, x: Any) -> Any:
            import numpy as np

            session = self.session_for(str(x.device))
            arr = np.ascontiguousarray(x.detach().float().cpu().numpy())
            if self.facts.get("batch_fixed") and arr.shape[0] != 1:
                parts = [self._run(session, arr[i : i + 1]) for i in range(arr.shape[0])]
                out = np.concatenate(parts, axis=0)
            else:
                out = self._run(session, arr)
            return torch.from_numpy(np.asarray(out, dtype=np.float32)).to(x.device)

        def _run(self, session: Any, arr: Any) -> Any:
            return session.run([self.output_name], {self.input_name: arr})[0]

    _CLASS = OnnxNetwork
    return OnnxNetwork
