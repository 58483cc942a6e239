"""ModelConfig: one model variant (head, width, depth, activation, strides, anchors), loaded from YAML.

Torch-free (PyYAML only; `edgepose.nn` imports its torch modules lazily), so configs can be checked
without building a model. The registry of shipped variants is the package data `edgepose/models/*.yaml`.
`head` picks the prediction head on the shared backbone and neck: the anchor-based YOLO-Pose head (the
default) or the NMS-free, keypoint-driven ER-Pose head (`edgepose.nn.erpose`), which has no anchors.
"""

from __future__ import annotations

import difflib
import enum
import os
from dataclasses import dataclass, fields
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgepose.errors import ConfigError

if TYPE_CHECKING:
    from importlib.resources.abc import Traversable  # Python 3.11+; only an annotation here

REGISTRY_PACKAGE = "edgepose.models"  # one <name>.yaml per shipped variant, installed as package data


class HeadKind(str, enum.Enum):
    YOLO_POSE = "yolo-pose"  # anchor boxes + objectness + keypoints per anchor; NMS at inference
    ERPOSE = "erpose"  # anchor-free, keypoint-driven, one-to-one assignment: no NMS (edgepose.nn.erpose)


class Activation(str, enum.Enum):
    RELU = "relu"  # the deployment recipe: every embedded compiler fuses and quantizes it
    RELU6 = "relu6"
    SILU = "silu"  # the reference YOLOv5 activation


# Anchors (w, h) in input pixels for 256x256 person data: persons are tall (heights 13-230 px);
# the third anchor of each level is wide, for lying or crouching people.
DEFAULT_ANCHORS: tuple[tuple[float, ...], ...] = (
    (8, 18, 14, 32, 28, 20),  # P3/8
    (22, 52, 44, 40, 38, 88),  # P4/16
    (70, 140, 130, 100, 120, 220),  # P5/32
)


@dataclass(frozen=True)
class ModelConfig:
    """A model variant. Construction validates every field (ConfigError on a bad value)."""

    name: str
    depth_multiple: float
    width_multiple: float
    activation: Activation = Activation.RELU
    num_keypoints: int = 17
    strides: tuple[int, ...] = (8, 16, 32)
    anchors: tuple[tuple[float, ...], ...] = DEFAULT_ANCHORS  # per level, flat (w0, h0, w1, h1, ...)
    input_size: int = 256  # default training/export size, a multiple of max(strides)
    head: HeadKind = HeadKind.YOLO_POSE  # ERPOSE ignores `anchors` (a YAML may not set them)

    def __post_init__(self) -> None:
        # Accept the JSON-ish spellings too (lists, "relu") so dataclasses.replace(cfg, ...) stays typed.
        try:
            act = Activation(self.activation)
        except ValueError as exc:
            choices = [a.value for a in Activation]
            raise ConfigError(
                f"model config '{self.name}': unknown activation {self.activation!r}; "
                f"{_suggest(str(self.activation), choices)}"
            ) from exc
        object.__setattr__(self, "activation", act)
        try:
            head = HeadKind(self.head)
        except ValueError as exc:
            choices = [h.value for h in HeadKind]
            raise ConfigError(
                f"model config '{self.name}': unknown head {self.head!r}; {_suggest(str(self.head), choices)}"
            ) from exc
        object.__setattr__(self, "head", head)
        object.__setattr__(self, "strides", tuple(int(s) for s in self.strides))
        object.__setattr__(self, "anchors", tuple(tuple(float(v) for v in row) for row in self.anchors))
        _validate(self)

    @property
    def num_anchors(self) -> int:
        return len(self.anchors[0]) // 2


_REQUIRED = ("name", "depth_multiple", "width_multiple")
_KNOWN = tuple(f.name for f in fields(ModelConfig))
_STRIDES = (8, 16, 32, 64)


def _validate(cfg: ModelConfig) -> None:
    where = f"model config '{cfg.name}'"
    for key in ("depth_multiple", "width_multiple"):
        v = getattr(cfg, key)
        if not 0.0 < v <= 4.0:
            raise ConfigError(f"{where}: {key} {v} is out of range; use a value in (0, 4], e.g. 0.33")
    if cfg.num_keypoints < 1:
        raise ConfigError(f"{where}: num_keypoints {cfg.num_keypoints} must be >= 1 (17 for COCO)")
    if cfg.strides not in (_STRIDES[:3], _STRIDES):
        raise ConfigError(
            f"{where}: strides {list(cfg.strides)} unsupported; use [8, 16, 32] or [8, 16, 32, 64]"
        )
    if cfg.head is HeadKind.YOLO_POSE:
        _validate_anchors(cfg, where)
    m = max(cfg.strides)
    if cfg.input_size <= 0 or cfg.input_size % m:
        near = max(m, round(cfg.input_size / m) * m)
        raise ConfigError(
            f"{where}: input_size {cfg.input_size} is not divisible by the largest stride {m}; "
            f"use a multiple of {m}, e.g. {near}"
        )


def _validate_anchors(cfg: ModelConfig, where: str) -> None:
    if len(cfg.anchors) != len(cfg.strides):
        raise ConfigError(
            f"{where}: {len(cfg.anchors)} anchor rows for {len(cfg.strides)} strides; give one row per stride"
        )
    lens = {len(row) for row in cfg.anchors}
    if len(lens) != 1 or next(iter(lens)) % 2 or next(iter(lens)) == 0:
        raise ConfigError(
            f"{where}: anchor rows have lengths {[len(r) for r in cfg.anchors]}; every row needs the same "
            "number of (w, h) pairs, e.g. [8, 18, 14, 32, 28, 20]"
        )
    if any(v <= 0 for row in cfg.anchors for v in row):
        raise ConfigError(
            f"{where}: anchors must be positive pixel sizes, got {[list(r) for r in cfg.anchors]}"
        )


def _suggest(word: str, choices: tuple[str, ...] | list[str]) -> str:
    close = difflib.get_close_matches(word, choices, n=1)
    return f"did you mean '{close[0]}'?" if close else f"known: {', '.join(choices)}"


def _num(source: str, key: str, v: Any, kind: type) -> Any:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or (kind is int and v != int(v)):
        raise ConfigError(f"{source}: {key} must be a {kind.__name__}, got {v!r}")
    return kind(v)


def config_from_dict(d: dict[str, Any], source: str = "<dict>") -> ModelConfig:
    """Build a ModelConfig from plain values (YAML/JSON); unknown keys fail with a suggestion."""
    if not isinstance(d, dict):
        raise ConfigError(f"{source}: expected a mapping of config keys, got {type(d).__name__}")
    for key in d:
        if key not in _KNOWN:
            raise ConfigError(f"{source}: unknown key '{key}'; {_suggest(str(key), _KNOWN)}")
    missing = [k for k in _REQUIRED if k not in d]
    if missing:
        raise ConfigError(f"{source}: missing key '{missing[0]}'; required keys: {', '.join(_REQUIRED)}")
    kw: dict[str, Any] = {"name": str(d["name"])}
    kw["depth_multiple"] = _num(source, "depth_multiple", d["depth_multiple"], float)
    kw["width_multiple"] = _num(source, "width_multiple", d["width_multiple"], float)
    if "head" in d:
        head = str(d["head"]).lower()
        choices = [h.value for h in HeadKind]
        if head not in choices:
            raise ConfigError(f"{source}: unknown head '{d['head']}'; {_suggest(head, choices)}")
        kw["head"] = HeadKind(head)
        if kw["head"] is HeadKind.ERPOSE and "anchors" in d:
            raise ConfigError(
                f"{source}: 'anchors' is a YOLO-Pose option; the erpose head is anchor-free: remove 'anchors'"
            )
    if "activation" in d:
        act = str(d["activation"]).lower()
        choices = [a.value for a in Activation]
        if act not in choices:
            raise ConfigError(f"{source}: unknown activation '{d['activation']}'; {_suggest(act, choices)}")
        kw["activation"] = Activation(act)
    for key in ("num_keypoints", "input_size"):
        if key in d:
            kw[key] = _num(source, key, d[key], int)
    try:
        if "strides" in d:
            kw["strides"] = tuple(_num(source, "strides", s, int) for s in d["strides"])
        if "anchors" in d:
            kw["anchors"] = tuple(
                tuple(_num(source, "anchors", v, float) for v in row) for row in d["anchors"]
            )
    except TypeError as exc:
        raise ConfigError(f"{source}: strides and anchors must be lists of numbers ({exc})") from exc
    try:
        return ModelConfig(**kw)
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc}") from exc


def config_to_dict(cfg: ModelConfig) -> dict[str, Any]:
    """JSON/YAML-safe dict; `config_from_dict(config_to_dict(c)) == c`. The YOLO-Pose dict is the one
    earlier versions wrote (no 'head' key); an ER-Pose dict has 'head' and no anchors."""
    if cfg.head is HeadKind.ERPOSE:
        return {
            "name": cfg.name,
            "head": cfg.head.value,
            "depth_multiple": cfg.depth_multiple,
            "width_multiple": cfg.width_multiple,
            "activation": cfg.activation.value,
            "num_keypoints": cfg.num_keypoints,
            "strides": list(cfg.strides),
            "input_size": cfg.input_size,
        }
    return {
        "name": cfg.name,
        "depth_multiple": cfg.depth_multiple,
        "width_multiple": cfg.width_multiple,
        "activation": cfg.activation.value,
        "num_keypoints": cfg.num_keypoints,
        "strides": list(cfg.strides),
        "anchors": [list(row) for row in cfg.anchors],
        "input_size": cfg.input_size,
    }


def load_config(path: str | Path | Traversable) -> ModelConfig:
    """Read a model YAML (a file, or a registry entry from `registry_file`)."""
    import yaml

    p = Path(path) if isinstance(path, (str, os.PathLike)) else path
    if not p.is_file():
        raise ConfigError(f"{p}: no such config file; pass a model .yaml file or a name like edgepose-n")
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{p}: not valid YAML ({str(exc).splitlines()[0]}); fix the file") from exc
    return config_from_dict(data, source=str(p))


def registry_file(name: str) -> Traversable:
    """The registry entry of variant `name` (it may not exist; see `available_configs`)."""
    return resources.files(REGISTRY_PACKAGE) / f"{name}.yaml"


def available_configs() -> list[str]:
    """Names of the shipped variants (the registry's YAML files)."""
    return sorted(e.name[: -len(".yaml")] for e in resources.files(REGISTRY_PACKAGE).iterdir()
                  if e.name.endswith(".yaml"))  # fmt: skip


def resolve_config(name_or_path: str) -> ModelConfig:
    """A registry name ("edgepose-n" -> edgepose/models/edgepose-n.yaml) or a path to a YAML file."""
    p = Path(name_or_path)
    if p.suffix in (".yaml", ".yml") or p.is_file():
        return load_config(p)
    reg = registry_file(name_or_path)
    if reg.is_file():
        return load_config(reg)
    names = available_configs()
    raise ConfigError(
        f"unknown model '{name_or_path}'; {_suggest(name_or_path, names)} (or pass a .yaml path)"
    )
