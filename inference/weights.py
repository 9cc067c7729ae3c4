"""Verified weights loading: containment and SHA-256 first, then safetensors or weights-only
torch (TorchScript is never loaded: it carries code)."""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from inference.card import REFUSED_FORMATS, ModelCard
from inference.card_data import CardError, package_file
from inference.onnx_model import ONNX_FORMAT
from radlens_core.errors import UserError
from radlens_core.files import atomic_write_bytes, atomic_write_text, sha256_file


class WeightsError(UserError, RuntimeError):
    """A weights file that is missing, tampered with or unreadable; the message names it."""


def verify_files(card: ModelCard) -> None:
    """Check every file listed in the card against its SHA-256 before anything is loaded."""
    for name, expected in card.files.items():
        path = card.path / name
        if not path.exists() and not path.is_symlink():
            raise WeightsError(f"{path}: weights file is missing from model package {card.id!r}")
        try:
            real = package_file(card.path, name)  # inside the package, a regular file
        except CardError as exc:
            raise WeightsError(str(exc)) from exc
        actual = sha256_file(real)
        if actual != expected:
            raise WeightsError(
                f"{path}: SHA-256 mismatch (card says {expected[:12]}..., file is {actual[:12]}...);"
                " the model was refused because its weights were changed"
            )


def _state_dict(card: ModelCard, path: Path) -> dict[str, Any]:
    fmt = card.network["format"]
    try:
        if fmt == "safetensors":
            from safetensors.torch import load_file

            return load_file(str(path), device="cpu")
        import torch

        # weights_only refuses to unpickle anything but tensors and plain containers.
        obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except WeightsError:
        raise
    except Exception as exc:  # noqa: BLE001 - any reader failure means the same to the user
        raise WeightsError(f"{path}: cannot read weights ({type(exc).__name__}: {exc})") from exc
    if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict):
        raise WeightsError(f"{path}: expected a state dict, found {type(obj).__name__}")
    return obj


def load_network(card: ModelCard, own_axes: bool = False):
    """Verify hashes and build the card's network on the CPU in eval mode (a torch Module).

    A network that sees other axes than RadLens's frame (``network.axes``, e.g. a converted
    MONAI bundle's "RAS") comes wrapped so it takes and gives the grid the engine hands it,
    ``networks.frame_axes`` of those axes (RadLens's order of axes, the network's directions:
    "SAR" for "RAS"; "SPL" for RadLens's own models); ``own_axes`` gives the bare network
    (its state dict is the package's)."""
    fmt = card.network.get("format")
    if fmt in REFUSED_FORMATS:  # a card validated elsewhere, or built by hand: never loaded
        raise WeightsError(f"{card.path}: {REFUSED_FORMATS[fmt]}")
    verify_files(card)
    try:
        path = package_file(card.path, card.network["weights"])
    except CardError as exc:
        raise WeightsError(str(exc)) from exc
    if fmt == ONNX_FORMAT:
        from inference.onnx_session import load_onnx_network

        try:
            graph = load_onnx_network(card, path)
        except CardError as exc:  # OnnxError: the graph refused, in a sentence
            raise WeightsError(str(exc)) from exc
        return _own_axes(card, graph, own_axes)
    from inference.networks import build_network

    try:
        net = build_network(card.network["architecture"], card.network.get("kwargs", {}))
    except (TypeError, ValueError) as exc:
        raise WeightsError(
            f"{card.path}: cannot build {card.network['architecture']}: {exc}"
        ) from exc
    state = _state_dict(card, path)
    # Bundles save with a "module." prefix when trained with DataParallel.
    if state and all(k.startswith("module.") for k in state):
        state = {k[len("module.") :]: v for k, v in state.items()}
    try:
        net.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise WeightsError(
            f"{path}: weights do not fit the declared network: {str(exc)[:300]}"
        ) from exc
    return _own_axes(card, net, own_axes)


def _own_axes(card: ModelCard, net: Any, own_axes: bool) -> Any:
    """``net`` in eval mode, wrapped to take the engine's grid when its card names other axes
    (a torch network or an ONNX graph alike), unless ``own_axes`` asks for the bare one."""
    if own_axes:
        return net.eval()
    from inference.networks import MODEL_AXES, adapt_axes

    return adapt_axes(net, card.network.get("axes", MODEL_AXES)).eval()


def save_package(folder: str | Path, card: dict[str, Any], net: Any) -> ModelCard:
    """Write a model package: ``net``'s state dict as safetensors + model.json with its SHA-256.

    ``card`` is the model.json content without ``files`` (and optionally without
    ``network.weights``/``format``); the written card is validated by loading it back."""
    from safetensors.torch import save

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    data = json.loads(json.dumps(card))  # a deep copy that is also proof of plain JSON
    network = data.setdefault("network", {})
    network.setdefault("format", "safetensors")
    weights = network.setdefault("weights", "model.safetensors")
    state = {k: v.detach().cpu().contiguous() for k, v in net.state_dict().items()}
    atomic_write_bytes(folder / weights, save(state))
    data["files"] = {weights: sha256_file(folder / weights)}
    data.setdefault("schema_version", 1)
    atomic_write_text(folder / "model.json", json.dumps(data, indent=2) + "\n")
    return ModelCard.load(folder)


def bundle_to_package(bundle: str | Path, dest: str | Path) -> ModelCard:
    """Write a MONAI bundle folder as a RadLens package in ``dest``: its card read as data,
    its state dict read weights-only and written as safetensors (nothing is unpickled when it
    runs later), the new weights' SHA-256 in model.json. CardError/WeightsError say why not."""
    card = ModelCard.load(bundle)
    if card.source != "monai_bundle":
        raise CardError(f"{bundle}: not a MONAI bundle (it has a model.json)")
    net = load_network(card, own_axes=True)
    data = card.to_json()
    data.pop("files", None)
    for key in ("classes", "gradcam_layer", "max_input_size"):
        if not data.get(key):
            data.pop(key, None)
    data["network"] = {k: v for k, v in data["network"].items() if k not in ("format", "weights")}
    data["training"] = {**data.get("training", {}), "converted_from": "MONAI bundle"}
    return save_package(dest, data, net)


# ---- verdicts remembered (inference.verification's public face; here so the registry, a
# sibling of that module, can use them) ----------------------------------------------------
#: (package folder, ((file name, size, mtime ns, expected SHA-256), ...))
FilesKey = tuple[str, tuple[tuple[str, int, int, str], ...]]


@dataclass(frozen=True)
class Verification:
    """A package's verdict: ``problem`` is "" when every listed file matches its hash."""

    card: ModelCard
    problem: str = ""

    @property
    def verified(self) -> bool:
        return not self.problem


def files_key(card: ModelCard) -> FilesKey | None:
    """What identifies the card's files on disk now; None when one is missing (unstat-able)."""
    try:
        stats = []
        for name, sha in sorted(card.files.items()):
            st = (Path(card.path) / name).stat()
            stats.append((name, st.st_size, st.st_mtime_ns, sha))
    except OSError:
        return None  # a missing file: let verify_files say which
    return (str(card.path), tuple(stats))


class PackageVerifier:
    """Verifies cards' files, remembering each verdict while the files stay unchanged."""

    def __init__(self) -> None:
        self._known: dict[FilesKey, str] = {}
        self._lock = threading.Lock()
        self.hashed = 0  # how many packages were actually hashed (the rest came from memory)

    def verify(self, card: ModelCard) -> Verification:
        key = files_key(card)
        with self._lock:
            if key is not None and key in self._known:
                return Verification(card, self._known[key])
        try:
            verify_files(card)
            problem = ""
        except (WeightsError, OSError) as exc:
            problem = str(exc)
        with self._lock:
            self.hashed += 1
            if key is not None:
                self._known[key] = problem
        return Verification(card, problem)

    def verify_all(self, cards: list[ModelCard]) -> list[Verification]:
        return [self.verify(card) for card in cards]
