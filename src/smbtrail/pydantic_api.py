"""The one pydantic API of the engine, on pydantic 2 (command line, tests) and pydantic 1.10 (Splunk app).

The Splunk app vendors pydantic 1.10's pure-Python wheel: pydantic 2 needs the compiled pydantic-core,
one build per CPU and Python, which AppInspect's aarch64 check rejects. Engine modules import the
pydantic 2 names they use from here, never from pydantic: on pydantic 2 they are pydantic's own; on
1.10 `BaseModel` adds them over v1's methods and a metaclass turns `model_config` into v1's `Config`.
Records come out byte for byte the same under both (tests/test_pydantic_v1.py).

`construct(model, values)` builds a model from values already of the right types, without
validation: the host-log reader's hottest line.

What pydantic 1.10 cannot express here, so the adapters below refuse it: `model_config` keys other
than `extra`, validators other than mode "before"/"after", serializers with `info` or options.
`model_fields` is read on the class only (on 1.10 it is the metaclass's). Validation stays each
version's own: 1.10 coerces where 2 refuses (an int into a str field, 1.7 into an int field), so the
engine hands models values of the declared types.
"""

from __future__ import annotations

import json
from datetime import datetime
from functools import lru_cache
from typing import Any, Callable, Dict, Tuple

import pydantic

PYDANTIC_V1 = pydantic.VERSION.split(".")[0] == "1"

if not PYDANTIC_V1:
    from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_serializer, field_validator

    _FIELDS_SET = "__pydantic_fields_set__"
    _UNSET_SLOTS: Tuple[str, ...] = ("__pydantic_extra__", "__pydantic_private__")

    def _default(field: Any) -> Any:
        return field.get_default(call_default_factory=True)

else:
    from pydantic import Field, SecretStr, validator
    from pydantic.json import pydantic_encoder
    from pydantic.main import ModelMetaclass

    _FIELDS_SET = "__fields_set__"
    _UNSET_SLOTS = ()
    _CONFIG_V1 = {"extra": "extra"}  # pydantic 2 model_config key -> pydantic 1 Config attribute
    ConfigDict = dict

    def _default(field: Any) -> Any:
        return field.get_default()

    def field_validator(*fields: str, mode: str = "after") -> Callable[[Any], Any]:
        if mode not in ("before", "after"):
            raise NotImplementedError(f"field_validator mode {mode!r} has no pydantic 1 equivalent")
        return validator(*fields, pre=mode == "before", allow_reuse=True)

    def field_serializer(*fields: str) -> Callable[[Any], Any]:
        """A plain `(self, value)` serializer, applied by model_dump and model_dump_json as in pydantic 2."""
        def mark(function: Any) -> Any:
            function.__serialized_fields__ = fields
            return function

        return mark

    def _config_class(config: Dict[str, Any]) -> type:
        unknown = set(config) - set(_CONFIG_V1)
        if unknown:
            raise NotImplementedError(f"model_config keys without a pydantic 1 mapping: {sorted(unknown)}")
        return type("Config", (), {_CONFIG_V1[key]: value for key, value in config.items()})

    def _json_value(value: Any) -> Any:
        """What pydantic 2 writes for a value json.dumps cannot: UTC times end in Z."""
        if isinstance(value, datetime):
            text = value.isoformat()
            return text[:-6] + "Z" if text.endswith("+00:00") else text
        return pydantic_encoder(value)

    class _ModelMetaclass(ModelMetaclass):
        def __new__(mcs, name: str, bases: Tuple[type, ...], namespace: Dict[str, Any], **kwargs: Any) -> Any:
            config = namespace.pop("model_config", None)
            if config:
                namespace["Config"] = _config_class(config)
            serializers: Dict[str, Any] = {}
            for base in reversed(bases):
                serializers.update(getattr(base, "__serializers__", {}))
            for function in namespace.values():
                serializers.update(dict.fromkeys(getattr(function, "__serialized_fields__", ()), function))
            namespace["__serializers__"] = serializers
            return super().__new__(mcs, name, bases, namespace, **kwargs)

        @property
        def model_fields(cls) -> Dict[str, Any]:
            return cls.__fields__

    class BaseModel(pydantic.BaseModel, metaclass=_ModelMetaclass):
        """pydantic 1.10's BaseModel under pydantic 2's method names."""

        @classmethod
        def model_validate(cls, obj: Any) -> Any:
            return cls.parse_obj(obj)

        @property
        def model_fields_set(self) -> set:
            return self.__fields_set__

        def model_copy(self, *, update: Any = None, deep: bool = False) -> Any:
            return self.copy(update=update, deep=deep)

        def model_dump(self, *, mode: str = "python", **options: Any) -> Dict[str, Any]:
            data = self.dict(**options)
            return data if mode == "python" else json.loads(json.dumps(data, default=_json_value))

        def model_dump_json(self, *, indent: Any = None, **options: Any) -> str:
            separators = None if indent is not None else (",", ":")  # pydantic 2's compact form
            return json.dumps(self.model_dump(mode="json", **options), indent=indent, separators=separators,
                              ensure_ascii=False)

        def _iter(self, to_dict: bool = False, by_alias: bool = False, include: Any = None, exclude: Any = None,
                  exclude_unset: bool = False, exclude_defaults: bool = False, exclude_none: bool = False) -> Any:
            """v1's field walk under dict() and json(), plus what pydantic 2 does there and v1 does not:
            field serializers, and default_factory values count as defaults for exclude_defaults."""
            items = super()._iter(to_dict, by_alias, include, exclude, exclude_unset, exclude_defaults, exclude_none)
            if not to_dict:
                yield from items
                return
            for key, value in items:
                field = self.__fields__[key]
                raw = getattr(self, key)
                if exclude_defaults and field.default_factory is not None and raw == field.default_factory():
                    continue
                serializer = self.__serializers__.get(key)
                yield key, serializer(self, raw) if serializer else value


def construct(model: Any, values: Dict[str, Any]) -> Any:
    """A `model` holding `values`, unset fields at their defaults, without the validation pass (on the
    host-log reader's hottest line it costs twice the evtx parse of the record): the caller guarantees
    the types; tests validate every record built so from the dev data."""
    defaults, mutable = _defaults(model)
    data = dict(defaults)
    for name in mutable:
        data[name] = defaults[name].copy()
    data.update(values)
    obj = model.__new__(model)
    object.__setattr__(obj, "__dict__", data)
    object.__setattr__(obj, _FIELDS_SET, set(values))
    for name in _UNSET_SLOTS:
        object.__setattr__(obj, name, None)
    return obj


@lru_cache(maxsize=8)
def _defaults(model: Any) -> Tuple[Dict[str, Any], Tuple[str, ...]]:
    defaults = {name: _default(field) for name, field in model.model_fields.items()}
    return defaults, tuple(name for name, value in defaults.items() if isinstance(value, (list, dict, set)))


__all__ = ["PYDANTIC_V1", "BaseModel", "ConfigDict", "Field", "SecretStr", "construct", "field_serializer",
           "field_validator"]
