"""YAML configs with a strict schema: unknown keys and wrong types are errors, never ignored.

A schema is a nested dict of default values (loaded from ``configs/defaults/*.yml``). A user's
YAML is merged over it; ``--set a.b=value`` overrides are applied last (values parsed as YAML).
A mapping in the schema may hold the single key ``"*"``: then any sub-key is allowed and each is
checked against that entry (used for named sections such as ``datasets.<name>``).

Allowed values: a schema mapping may hold the key ``__choices__`` (never a config key), a side-table
``{dotted.key: [allowed values]}`` with keys relative to that mapping, e.g. in
``configs/defaults/train.yml``::

    __choices__:
      train.amp: [none, bf16, fp16]

A value outside its list is a :class:`UserError` naming the key and the allowed values.
"""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any, Iterable, Mapping

import yaml

from utils.errors import UserError
from utils.paths import REPO_ROOT

DEFAULTS_DIR = REPO_ROOT / "configs" / "defaults"
CHOICES = "__choices__"  # the side-table of allowed values in a schema mapping (see the module docstring)


def read_yaml(path: str | os.PathLike) -> dict:
    """Read a YAML mapping from ``path``; a missing/unreadable/non-mapping file is a UserError."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: config file not found")
    try:
        data = yaml.safe_load(path.read_text())
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: not valid YAML ({type(exc).__name__})") from exc
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise UserError(f"{path}: expected a YAML mapping at the top level, got {type(data).__name__}")
    return data


def load_schema(name: str) -> dict:
    """The default config ``configs/defaults/<name>.yml`` (the schema of a command's config)."""
    return read_yaml(DEFAULTS_DIR / f"{name}.yml")


def _type_ok(default: Any, value: Any) -> bool:
    if default is None or value is None:
        return True
    if isinstance(default, bool):
        return isinstance(value, bool)
    if isinstance(default, float):
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if isinstance(default, int):  # an integral float (``!!float 5e3`` in published options) is accepted
        return (isinstance(value, int) and not isinstance(value, bool)) or (
            isinstance(value, float) and value.is_integer()
        )
    if isinstance(default, (list, tuple)):
        return isinstance(value, (list, tuple))
    return isinstance(value, type(default))


def _merge(schema: Mapping, user: Mapping, where: str, source: str) -> dict:
    out = copy.deepcopy(dict(schema))
    wildcard = out.pop("*", None)
    choices = out.pop(CHOICES, None) or {}
    for key, default in schema.items():  # sections the user left out: their defaults, without side-tables
        if key not in user and key not in ("*", CHOICES) and isinstance(default, Mapping):
            out[key] = _merge(default, {}, f"{where}{key}.", source)
    for key, value in user.items():
        name = f"{where}{key}"
        if key in schema and key not in ("*", CHOICES):
            default = schema[key]
        elif wildcard is not None:
            default = wildcard
        else:
            known = ", ".join(sorted(k for k in schema if k != "*")) or "none"
            raise UserError(f"{source}: unknown config key '{name}' (known keys here: {known})")
        if isinstance(default, Mapping):
            if not isinstance(value, Mapping):
                raise UserError(f"{source}: config key '{name}' must be a mapping, got {type(value).__name__}")
            out[key] = _merge(default, value, f"{name}.", source)
        else:
            if not _type_ok(default, value):
                raise UserError(
                    f"{source}: config key '{name}' expects {type(default).__name__}, "
                    f"got {type(value).__name__} ({value!r})"
                )
            if isinstance(default, float) and isinstance(value, int):
                value = float(value)
            elif isinstance(default, int) and not isinstance(default, bool) and isinstance(value, float):
                value = int(value)
            out[key] = copy.deepcopy(value)
    _check_choices(out, choices, where, source)
    return out


def _check_choices(out: Mapping, choices: Mapping, where: str, source: str) -> None:
    """Every key of the ``__choices__`` side-table must hold one of its allowed values."""
    for dotted, allowed in choices.items():
        value: Any = out
        for part in dotted.split("."):
            value = value[part]
        if value not in allowed:
            listed = ", ".join(str(v) for v in allowed)
            raise UserError(f"{source}: config key '{where}{dotted}' must be one of {listed}, got {value!r}")



def parse_override(item: str) -> tuple[list[str], Any]:
    """``"train.niter=10"`` -> (["train", "niter"], 10). Values are parsed as YAML."""
    if "=" not in item:
        raise UserError(f"--set {item!r}: expected key.sub=value")
    key, raw = item.split("=", 1)
    if not key.strip():
        raise UserError(f"--set {item!r}: empty key")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    return key.strip().split("."), value


def _nest(keys: list[str], value: Any) -> dict:
    out: Any = value
    for key in reversed(keys):
        out = {key: out}
    return out


def _deep_update(base: dict, extra: Mapping) -> dict:
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(base.get(key), Mapping):
            _deep_update(base[key], value)
        else:
            base[key] = value
    return base


def build_config(
    schema: Mapping,
    user: Mapping | None = None,
    overrides: Iterable[str] = (),
    source: str = "config",
) -> dict:
    """Merge ``user`` and ``--set`` ``overrides`` over ``schema`` with strict key/type checks.

    Returns a new nested dict holding every schema key. Raises :class:`UserError` naming the
    offending key (``source`` is the file name used in messages).
    """
    merged = copy.deepcopy(dict(user or {}))
    for item in overrides:
        keys, value = parse_override(item)
        _deep_update(merged, _nest(keys, value))
    return _merge(schema, merged, "", source)


def load_config(path: str | os.PathLike | None, schema_name: str, overrides: Iterable[str] = ()) -> dict:
    """Load YAML ``path`` (or only defaults when None) checked against ``configs/defaults/<schema_name>.yml``."""
    user = read_yaml(path) if path is not None else {}
    return build_config(load_schema(schema_name), user, overrides, source=str(path or schema_name))
