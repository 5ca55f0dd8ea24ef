"""Load a local weights file into a backbone, whatever wrapper the file was saved in.

Accepted layouts (detected, not configured):

* a raw ``state_dict`` (``torch.save(model.state_dict())``, torchvision ImageNet files);
* a dict holding it under ``state_dict`` (Lightning, torchreid), ``net_dict`` (DeepSORT
  ``ckpt.t7`` of ZQPei/deep_sort_pytorch) or ``model`` (fast-reid), nested at most a few levels;
* keys prefixed by the module path of the backbone inside a larger model (``model.backbone.``,
  ``backbone.``, ``model.``) and by wrappers (``module.`` from DataParallel/DDP, ``_orig_mod.``
  from ``torch.compile``).

The backbone's own parameter names are the reference checkpoints' (torchreid for OSNet,
torchvision for ResNets, deep_sort_pytorch for DeepSORT's ``zqpei`` variant), so no renaming table
is needed; classification heads the backbone does not have (``classifier.*``, torchvision's
``fc.*``, fast-reid's ``heads.*``) are dropped. Everything else must fit exactly: a missing,
unexpected or wrongly shaped tensor is an error naming the file and the keys, never a silent
partial load. The one tolerance: BN ``num_batches_tracked`` counters, which files written before
PyTorch 0.4.1 lack, keep the model's value.

Security: files are read with ``torch.load(weights_only=True)``. Checkpoints that also pickle
plain metadata (NumPy scalars such as the ``acc`` of a ``ckpt.t7``, OmegaConf configs in Lightning
hyper-parameters, paths) are retried with exactly those data types allow-listed. Anything else
needs ``allow_pickle=True``, which runs arbitrary pickled code: only for files you trust.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import os
import pickle
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

import torch
from torch import Tensor, nn

ModelT = TypeVar("ModelT", bound=nn.Module)

#: Keys under which checkpoints nest the state dict, in the order they are looked for.
STATE_DICT_CONTAINER_KEYS: tuple[str, ...] = ("state_dict", "net_dict", "model")
#: How deep ``STATE_DICT_CONTAINER_KEYS`` are followed ({"model": {"state_dict": ...}}).
MAX_CONTAINER_DEPTH = 3
#: Key segments added by wrappers around a module; removed wherever they occur.
WRAPPER_SEGMENTS: frozenset[str] = frozenset({"module", "_orig_mod"})
#: Prefixes under which a larger model may hold the backbone; "" is a bare backbone file.
BACKBONE_PREFIXES: tuple[str, ...] = ("", "model.backbone.", "backbone.", "model.")
#: Classification heads that backbones drop (identity classifiers, ImageNet fc, fast-reid heads).
HEAD_PREFIXES: tuple[str, ...] = ("classifier.", "fc.", "heads.")
#: Buffers that may be absent from old files without changing the model's outputs.
OPTIONAL_KEY_SUFFIXES: tuple[str, ...] = ("num_batches_tracked",)
#: How many keys of each kind an error message lists.
MAX_LISTED_KEYS = 5

#: Pickled globals that only rebuild plain data; allowed when ``weights_only`` refuses a file.
_PLAIN_DATA_GLOBAL_NAMES: tuple[str, ...] = (
    "builtins.dict",
    "builtins.list",
    "builtins.tuple",
    "builtins.set",
    "builtins.frozenset",
    "builtins.int",
    "builtins.float",
    "builtins.str",
    "builtins.bool",
    "builtins.bytes",
    "collections.defaultdict",
    "typing.Any",
    "pathlib.PosixPath",
    "pathlib.WindowsPath",
    "pathlib.PurePosixPath",
    "pathlib.PureWindowsPath",
    "numpy.dtype",
    "numpy.ndarray",
)
#: NumPy scalar and array rebuilders; pickled under ``numpy.core`` (NumPy 1) or ``numpy._core``.
_NUMPY_MULTIARRAY_FUNCTIONS: tuple[str, ...] = ("scalar", "_reconstruct")
#: OmegaConf modules whose classes (configs, value nodes, metadata) are plain data.
_OMEGACONF_DATA_MODULES: tuple[str, ...] = (
    "omegaconf.dictconfig",
    "omegaconf.listconfig",
    "omegaconf.nodes",
    "omegaconf.base",
)


def load_backbone_weights(
    model: ModelT, path: str | os.PathLike, *, allow_pickle: bool = False
) -> ModelT:
    """Load the weights file ``path`` into ``model`` (in place) and return ``model``.

    Raises FileNotFoundError if ``path`` is not a file, and ValueError (one line, naming the file)
    if it is unreadable, holds no state dict, or does not fit ``model`` exactly.
    """
    weights_path = Path(path)
    checkpoint = read_checkpoint(weights_path, allow_pickle=allow_pickle)
    state_dict = extract_state_dict(checkpoint, weights_path)
    fitted = fit_state_dict(model, state_dict, weights_path)
    model.load_state_dict(fitted, strict=True)
    return model


def read_checkpoint(path: Path, allow_pickle: bool = False) -> Any:
    """``torch.load`` on CPU, safely; see the module docstring for the fallbacks."""
    if not path.is_file():
        raise FileNotFoundError(f"weights file not found: {path}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - every failure becomes one clear ValueError
        error: Exception = exc
    if _refused_a_global(error):
        try:
            with torch.serialization.safe_globals(_plain_data_globals()):
                return torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # noqa: BLE001
            error = exc
        if _refused_a_global(error):
            if not allow_pickle:
                raise ValueError(
                    f"{path}: holds pickled objects beyond tensors and plain data "
                    f"({_reason(error)}); pass allow_pickle=True only if you trust this file"
                ) from error
            try:
                return torch.load(path, map_location="cpu", weights_only=False)
            except Exception as exc:  # noqa: BLE001
                error = exc
    raise ValueError(f"{path}: not a readable PyTorch weights file ({_reason(error)})") from error


def extract_state_dict(checkpoint: Any, path: Path) -> dict[str, Tensor]:
    """The tensors of the state dict inside ``checkpoint``, wrapper key segments removed."""
    container = checkpoint
    for _ in range(MAX_CONTAINER_DEPTH):
        if not isinstance(container, Mapping):
            break
        nested = next(
            (container[key] for key in STATE_DICT_CONTAINER_KEYS
             if isinstance(container.get(key), Mapping)),
            None,
        )
        if nested is None:
            break
        container = nested
    if not isinstance(container, Mapping):
        raise ValueError(
            f"{path}: expected a state dict or a checkpoint dict, got {type(container).__name__}"
        )
    tensors = {
        _strip_wrapper_segments(str(key)): value
        for key, value in container.items()
        if isinstance(value, Tensor)
    }
    if not tensors:
        listed = ", ".join(map(str, list(container)[:MAX_LISTED_KEYS]))
        raise ValueError(f"{path}: no tensors found in the checkpoint (top-level keys: {listed})")
    return tensors


def fit_state_dict(
    model: nn.Module, state_dict: Mapping[str, Tensor], path: Path
) -> dict[str, Tensor]:
    """Select the backbone's entries of ``state_dict`` and check them against ``model``.

    Returns a complete state dict for ``model`` (its own values for tolerated missing keys).
    """
    model_state = model.state_dict()
    model_keys = set(model_state)
    candidate = _select_backbone_entries(state_dict, model_keys)
    for head in HEAD_PREFIXES:
        if not any(key.startswith(head) for key in model_keys):
            candidate = {k: v for k, v in candidate.items() if not k.startswith(head)}

    missing = sorted(
        key for key in model_keys - candidate.keys() if not key.endswith(OPTIONAL_KEY_SUFFIXES)
    )
    unexpected = sorted(candidate.keys() - model_keys)
    mismatched = [
        f"{key}: file {list(candidate[key].shape)} vs model {list(model_state[key].shape)}"
        for key in sorted(candidate.keys() & model_keys)
        if candidate[key].shape != model_state[key].shape
    ]
    if missing or unexpected or mismatched:
        problems = [
            _listing(kind, keys)
            for kind, keys in (
                ("missing", missing), ("unexpected", unexpected), ("shape-mismatched", mismatched)
            )
            if keys
        ]
        raise ValueError(
            f"{path}: weights do not fit {type(model).__name__}: {'; '.join(problems)}"
        )
    return {**model_state, **candidate}


def _select_backbone_entries(
    state_dict: Mapping[str, Tensor], model_keys: set[str]
) -> dict[str, Tensor]:
    """The entries under the prefix whose stripped keys best match the model's keys."""
    best: dict[str, Tensor] = dict(state_dict)
    best_overlap = -1
    for prefix in BACKBONE_PREFIXES:
        entries = {
            key[len(prefix):]: value for key, value in state_dict.items() if key.startswith(prefix)
        }
        overlap = len(entries.keys() & model_keys)
        if overlap > best_overlap:
            best, best_overlap = entries, overlap
    return best


def _strip_wrapper_segments(key: str) -> str:
    return ".".join(segment for segment in key.split(".") if segment not in WRAPPER_SEGMENTS)


def _listing(kind: str, keys: list[str]) -> str:
    shown = ", ".join(keys[:MAX_LISTED_KEYS])
    more = f", ... (+{len(keys) - MAX_LISTED_KEYS} more)" if len(keys) > MAX_LISTED_KEYS else ""
    return f"{len(keys)} {kind} ({shown}{more})"


def _refused_a_global(error: Exception) -> bool:
    """Whether ``weights_only`` rejected a pickled class/function (not a damaged file)."""
    return isinstance(error, pickle.UnpicklingError) and "Unsupported global" in str(error)


def _reason(error: BaseException) -> str:
    """The informative line of a ``torch.load`` error (the unpickler's own, when wrapped)."""
    cause = error.__context__ if isinstance(error.__context__, pickle.UnpicklingError) else error
    lines = [line.strip() for line in str(cause).splitlines() if line.strip()]
    text = lines[0] if lines else type(cause).__name__
    return text if len(text) <= 200 else text[:197] + "..."


@functools.cache
def _plain_data_globals() -> list[tuple[Any, str]]:
    """(object, pickled name) pairs for ``torch.serialization.safe_globals``."""
    allowed: list[tuple[Any, str]] = []
    for name in _PLAIN_DATA_GLOBAL_NAMES:
        module_name, _, attribute = name.rpartition(".")
        obj = _resolve(module_name, attribute)
        if obj is not None:
            allowed.append((obj, name))
    numpy_multiarray = _import("numpy._core.multiarray") or _import("numpy.core.multiarray")
    if numpy_multiarray is not None:
        for function in _NUMPY_MULTIARRAY_FUNCTIONS:
            obj = getattr(numpy_multiarray, function, None)
            if obj is not None:
                allowed += [(obj, f"numpy._core.multiarray.{function}"),
                            (obj, f"numpy.core.multiarray.{function}")]
    numpy_dtypes = _import("numpy.dtypes")
    if numpy_dtypes is not None:
        allowed += [
            (cls, f"numpy.dtypes.{name}")
            for name, cls in vars(numpy_dtypes).items()
            if inspect.isclass(cls) and name.endswith("DType")
        ]
    for module_name in _OMEGACONF_DATA_MODULES:
        module = _import(module_name)
        if module is not None:
            allowed += [
                (cls, f"{module_name}.{name}")
                for name, cls in vars(module).items()
                if inspect.isclass(cls) and cls.__module__ == module_name
            ]
    return allowed


def _import(module_name: str) -> Any:
    try:
        return importlib.import_module(module_name)
    except ImportError:
        return None


def _resolve(module_name: str, attribute: str) -> Any:
    module = _import(module_name)
    return getattr(module, attribute, None) if module is not None else None
