"""ONNX model packages: the card's "onnx" block and the graph checked against the card (the
network the tasks call, an onnxruntime session, is inference.onnx_session's).

An ONNX package is a model.json whose network reads

    "network": {"format": "onnx", "weights": "model.onnx", "output": "softmax",
                "onnx": {"input": "image", "output": "logits"}}

and the .onnx is a regular file of the package listed (with its SHA-256) in "files", like any
weights. An ONNX graph is data run by onnxruntime's own kernels, unlike TorchScript, which
carries Python-like code. Before a session is made the graph is read as data (``onnx.load``
without external data) and refused with a sentence when: its default opset is outside what
this onnxruntime runs; a node (in any subgraph or local function) uses an operator domain other
than ONNX's own (a custom op would need a native library); a tensor keeps its data in a file
that is outside the package or not hashed in the card; the input or output named by the card is
missing, not float, of the wrong rank, or has a fixed size that contradicts the card. The card's
``network.kwargs`` of an ONNX package are derived here (dims, channels, and the parameter count
the memory estimate uses, from the weights' size on disk), never read from the card.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from inference.card_data import CardError, package_file

ONNX_FORMAT = "onnx"
ONNX_ARCHITECTURE = "onnx"
#: operator domains onnxruntime runs with its own kernels ("" is ai.onnx)
ALLOWED_DOMAINS = ("", "ai.onnx")
#: the oldest default-domain opset accepted (older graphs predate today's operator semantics)
MIN_OPSET = 7
#: the largest .onnx file read (protobuf itself stops at 2 GB)
MAX_ONNX_BYTES = 2 * 1024**3
FLOAT, FLOAT16 = 1, 10  # onnx.TensorProto.FLOAT, FLOAT16
ErrorFactory = Callable[[str, str], Exception]


class OnnxError(CardError):
    """An ONNX graph that does not match its card or may not run; the message names the file."""


# ---- the card's network block (no file is parsed here: card validation stays cheap) -------
def check_onnx_network(
    net: dict[str, Any], data: dict[str, Any], dims: int, folder: Path, error: ErrorFactory
) -> dict[str, Any]:
    """The card's ``network`` block of an ONNX package, normalised (``architecture`` "onnx",
    derived ``kwargs``); ``error(field, problem)`` for a bad field."""
    arch = net.get("architecture", ONNX_ARCHITECTURE)
    if arch != ONNX_ARCHITECTURE:
        raise error(
            "network.architecture",
            f"is {arch!r}; an ONNX graph carries its own network, so it must be 'onnx' or absent",
        )
    block = net.get("onnx")
    if not isinstance(block, dict):
        raise error("network.onnx", "must name the graph's input and output: {input, output}")
    for key in ("input", "output"):
        name = block.get(key)
        if not isinstance(name, str) or not name or len(name) > 200:
            raise error(f"network.onnx.{key}", f"must be the graph's {key} name, got {name!r}")
    if data.get("gradcam_layer"):
        raise error(
            "gradcam_layer",
            "must be null for an ONNX model: its graph has no layers Grad-CAM can hook",
        )
    weights = net.get("weights")
    size = 0
    if isinstance(weights, str) and weights:
        try:
            size = os.stat(Path(folder) / weights).st_size
        except OSError:
            size = 0  # missing: the hash check says so, with the file's name
    labels = data.get("labels") or []
    classes = data.get("classes") or []
    out_ch = len(classes) if data.get("task") == "classification" else len(labels) + 1
    kwargs = {
        "spatial_dims": dims,
        "in_channels": data.get("input_channels", 1),
        "out_channels": max(out_ch, 1),
        # float32 weights dominate an ONNX file: its size is the parameter count's estimate
        "parameters": size // 4,
    }
    from inference.networks import check_card_network

    try:
        check_card_network(ONNX_ARCHITECTURE, kwargs)
    except ValueError as exc:
        raise error("network.weights", f"{weights!r} {exc}") from exc
    return {**net, "architecture": ONNX_ARCHITECTURE, "kwargs": kwargs, "onnx": dict(block)}


# ---- the graph, read as data -----------------------------------------------------------------
def _graphs(graph: Any) -> Iterator[Any]:
    """``graph`` and every subgraph held in node attributes (If/Loop/Scan bodies)."""
    yield graph
    for node in graph.node:
        for attr in node.attribute:
            if attr.HasField("g"):
                yield from _graphs(attr.g)
            for sub in attr.graphs:
                yield from _graphs(sub)


def _nodes(model: Any) -> Iterator[Any]:
    """Every node of the model: its graph, subgraphs and local functions (and theirs)."""
    for g in _graphs(model.graph):
        yield from g.node
    for fn in model.functions:
        for node in fn.node:
            yield node
            for attr in node.attribute:
                for sub in ([attr.g] if attr.HasField("g") else []) + list(attr.graphs):
                    for g in _graphs(sub):
                        yield from g.node


def _tensors(graph: Any) -> Iterator[Any]:
    """Every tensor a graph stores: initializers, sparse initializers, constant attributes."""
    yield from graph.initializer
    for sparse in graph.sparse_initializer:
        yield sparse.values
        yield sparse.indices
    for node in graph.node:
        for attr in node.attribute:
            if attr.HasField("t"):
                yield attr.t
            yield from attr.tensors
            if attr.HasField("sparse_tensor"):
                yield attr.sparse_tensor.values
                yield attr.sparse_tensor.indices


def _dims(value_info: Any) -> list[int | str | None]:
    """A value's shape: ints for fixed sizes, names or None for free ones."""
    shape = value_info.type.tensor_type.shape
    out: list[int | str | None] = []
    for d in shape.dim:
        if d.HasField("dim_value"):
            out.append(int(d.dim_value))
        else:
            out.append(d.dim_param or None)
    return out


def _expected_out_channels(card: Any) -> int | None:
    output = card.network.get("output", "softmax")
    if card.task == "detection":
        return 1 + card.spatial_dims
    if card.task == "classification":
        n = len(card.classes)
        return None if not n or (output == "sigmoid" and n == 2) else n
    if output == "softmax":
        return max(e.index for e in card.labels) + 1
    return None


def check_graph(card: Any, path: Path) -> dict[str, Any]:
    """Read the .onnx at ``path`` as data and check it against ``card`` (a ModelCard); returns
    {"opset", "parameters", "batch_fixed"}. OnnxError with a sentence otherwise."""
    import onnx
    from onnx import defs

    size = path.stat().st_size
    if size > MAX_ONNX_BYTES:
        raise OnnxError(f"{path}: the ONNX file is {size:,} bytes; the limit is {MAX_ONNX_BYTES:,}")
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # noqa: BLE001 - any parser failure means the same to the user
        raise OnnxError(f"{path}: not a readable ONNX model ({type(exc).__name__}: {exc})") from exc
    graph = model.graph
    where = f"{path}"
    opsets = {o.domain or "": int(o.version) for o in model.opset_import}
    newest = defs.onnx_opset_version()
    default = opsets.get("", opsets.get("ai.onnx"))
    if default is None or not MIN_OPSET <= default <= newest:
        raise OnnxError(
            f"{where}: ONNX opset {default} is not supported (this RadLens runs opsets"
            f" {MIN_OPSET}-{newest}); export the model with an opset in that range"
        )
    local = {(f.domain, f.name) for f in model.functions}
    for node in _nodes(model):
        domain = node.domain or ""
        if domain in ALLOWED_DOMAINS or (node.domain, node.op_type) in local:
            continue
        raise OnnxError(
            f"{where}: node {node.name or node.op_type!r} uses the operator"
            f" {domain}.{node.op_type}; custom operator domains need native code"
            " outside the package and are refused (only ONNX's own operators run)"
        )
    for name in opsets:
        if name not in ALLOWED_DOMAINS and name not in {d for d, _ in local}:
            raise OnnxError(
                f"{where}: the model imports the operator set {name!r}; custom operator domains"
                " need native code outside the package and are refused"
            )
    parameters = 0
    for g in _graphs(graph):
        for t in _tensors(g):
            n = 1
            for d in t.dims:
                n *= int(d)
            parameters += n
            if t.data_location != onnx.TensorProto.EXTERNAL:
                continue
            entries = {e.key: e.value for e in t.external_data}
            location = entries.get("location", "")
            bad = not location or Path(location).is_absolute() or ".." in Path(location).parts
            if bad or location not in card.files:
                raise OnnxError(
                    f"{where}: tensor {t.name!r} keeps its data in {location!r}, which is not a"
                    " file listed with its SHA-256 in the package's model.json; external data"
                    " must be hashed files inside the package, so the model was refused"
                )
            package_file(card.path, location)  # a regular file inside the package
    _check_io(card, graph, where)
    batch = _dims([i for i in graph.input if i.name == card.network["onnx"]["input"]][0])[0]
    return {"opset": default, "parameters": parameters, "batch_fixed": isinstance(batch, int)}


def _check_io(card: Any, graph: Any, where: str) -> None:
    spec = card.network["onnx"]
    stored = {t.name for t in graph.initializer}
    inputs = [i for i in graph.input if i.name not in stored]
    names = [i.name for i in inputs]
    if spec["input"] not in names:
        raise OnnxError(
            f"{where}: the card's input {spec['input']!r} is not an input of the graph ({names})"
        )
    if len(inputs) != 1:
        raise OnnxError(
            f"{where}: the graph takes {len(inputs)} inputs ({names}); RadLens feeds one image"
        )
    outputs = {o.name: o for o in graph.output}
    if spec["output"] not in outputs:
        raise OnnxError(
            f"{where}: the card's output {spec['output']!r} is not an output of the graph"
            f" ({list(outputs)})"
        )
    rank = card.spatial_dims + 2
    inp = inputs[0]
    if inp.type.tensor_type.elem_type != FLOAT:
        raise OnnxError(
            f"{where}: input {inp.name!r} must be float32; the engine feeds float32 images"
        )
    dims = _dims(inp)
    if len(dims) != rank:
        raise OnnxError(
            f"{where}: input {inp.name!r} has {len(dims)} axes; a {card.spatial_dims}D model"
            f" takes {rank} (batch, channels, {'z, ' if card.spatial_dims == 3 else ''}y, x)"
        )
    if isinstance(dims[1], int) and dims[1] != card.input_channels:
        raise OnnxError(
            f"{where}: input {inp.name!r} takes {dims[1]} channels; the card says"
            f" input_channels {card.input_channels}"
        )
    patch = _model_patch(card)
    fixed = [(d, p) for d, p in zip(dims[2:], patch or [None] * len(dims[2:]), strict=True)]
    for d, p in fixed:
        if isinstance(d, int) and d != p:
            want = "the card's patch_size" if p else "a free size (the card runs whole images)"
            raise OnnxError(
                f"{where}: input {inp.name!r} has a fixed size {dims[2:]} that differs from"
                f" {want} {list(patch) if patch else ''}".rstrip()
            )
    out = outputs[spec["output"]]
    if out.type.tensor_type.elem_type not in (FLOAT, FLOAT16):
        raise OnnxError(f"{where}: output {out.name!r} must be float32 or float16")
    odims = _dims(out)
    want_rank = 2 if card.task == "classification" else rank
    if odims and len(odims) != want_rank:
        raise OnnxError(
            f"{where}: output {out.name!r} has {len(odims)} axes; a {card.task} model gives"
            f" {want_rank}"
        )
    channels = _expected_out_channels(card)
    if (
        channels is not None
        and len(odims) > 1
        and isinstance(odims[1], int)
        and odims[1] != channels
    ):
        raise OnnxError(
            f"{where}: output {out.name!r} has {odims[1]} channels; the card's labels/classes"
            f" need {channels}"
        )


def _model_patch(card: Any) -> tuple[int, ...] | None:
    """The spatial input size the engine feeds (z, y, x)/(y, x), when the card fixes one."""
    if card.task == "classification":
        for step in card.preprocessing.get("steps", []):
            if step.get("op") == "resize":
                return tuple(int(s) for s in step["size"])[::-1]
        return None
    return tuple(card.patch_size)[::-1] if card.patch_size else None
