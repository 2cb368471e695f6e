"""Dataclasses without importing :mod:`dataclasses`, which imports ``inspect`` (and ``ast``, ``dis``, ``tokenize``...):
~9 ms here, Python's whole start-up time again, in every orch command, plus ~0.5 ms to ``exec`` each class's methods.

The subset orch uses, with the standard library's semantics: ``@dataclass``, ``@dataclass(frozen=True)``,
``field(default=...)``, ``field(default_factory=...)``, ``fields()``, ``replace()``, ``FrozenInstanceError``; the
generated ``__init__`` (and its TypeErrors), ``__repr__``, ``__eq__``, ``__hash__``, ``__match_args__``,
``__post_init__``, fields of base records, ``ClassVar`` skipped, mutable defaults refused. The methods are closures.
The type checker sees the standard ``dataclasses`` (the ``TYPE_CHECKING`` branch), so mypy checks real dataclasses;
tests/test_record.py checks that both behave the same. At run time this module imports nothing.
"""

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: importing typing costs ~2.6 ms

__all__ = ["FrozenInstanceError", "dataclass", "field", "fields", "replace"]

if TYPE_CHECKING:
    from dataclasses import FrozenInstanceError, dataclass, field, fields, replace
else:
    import sys

    class FrozenInstanceError(AttributeError):
        pass

    MISSING = object()
    _FIELDS = "__record_fields__"  # {name: Field} in definition order (not __dataclass_fields__: these are not stdlib's)

    class Field:
        __slots__ = ("name", "type", "default", "default_factory")

        def __init__(self, default=MISSING, default_factory=MISSING):
            self.name = self.type = None
            self.default, self.default_factory = default, default_factory

    def field(*, default=MISSING, default_factory=MISSING):
        if default is not MISSING and default_factory is not MISSING:
            raise ValueError("cannot specify both default and default_factory")
        return Field(default, default_factory)

    def fields(class_or_instance):
        if (found := getattr(class_or_instance, _FIELDS, None)) is None:
            raise TypeError("must be called with a dataclass type or instance")
        return tuple(found.values())

    def replace(obj, /, **changes):
        if (found := getattr(type(obj), _FIELDS, None)) is None:
            raise TypeError("replace() should be called on dataclass instances")
        for name in found:
            if name not in changes:
                changes[name] = getattr(obj, name)
        return obj.__class__(**changes)

    def dataclass(cls=None, /, *, frozen=False):
        return (lambda cls: _build(cls, frozen)) if cls is None else _build(cls, frozen)

    def _is_classvar(annotation):
        if isinstance(annotation, str):  # under `from __future__ import annotations`
            return annotation in ("ClassVar", "typing.ClassVar") or annotation.startswith(("ClassVar[", "typing.ClassVar["))
        typing = sys.modules.get("typing")  # a ClassVar object means typing is imported already
        return typing is not None and typing.ClassVar in (annotation, getattr(annotation, "__origin__", None))

    def _build(cls, frozen):
        own, found = cls.__dict__, {}
        for base in cls.__mro__[-1:0:-1]:
            found.update(base.__dict__.get(_FIELDS, {}))
        annotations = own.get("__annotations__", {})
        for name, annotation in annotations.items():
            if _is_classvar(annotation):
                continue
            value = own.get(name, MISSING)
            found[name] = f = value if isinstance(value, Field) else Field(value)
            f.name, f.type = name, annotation
            if f.default.__class__.__hash__ is None:
                raise ValueError(f"mutable default {type(f.default)} for field {name} is not allowed: use default_factory")
            if isinstance(value, Field):  # the class attribute is the default, or nothing
                setattr(cls, name, f.default) if f.default is not MISSING else delattr(cls, name)
        for name, value in own.items():
            if isinstance(value, Field):
                raise TypeError(f"{name!r} is a field but has no type annotation")
        optional = 0
        for f in found.values():
            if f.default is not MISSING or f.default_factory is not MISSING:
                optional += 1
            elif optional:
                raise TypeError(f"non-default argument {f.name!r} follows default argument")
        setattr(cls, _FIELDS, found)
        names, n, where = tuple(found), len(found), f"{cls.__qualname__}.__init__()"
        template = {f.name: f.default for f in found.values()}  # MISSING: still to be given, or made by its factory
        required = [f.name for f in found.values() if f.default is MISSING and f.default_factory is MISSING]
        need = [frozenset(required[i:]) for i in range(n + 1)]  # the required fields after i positional arguments
        factories = [(f.name, f.default_factory) for f in found.values() if f.default_factory is not MISSING]
        fast, post_init = frozen or cls.__setattr__ is object.__setattr__, hasattr(cls, "__post_init__")

        def refuse(args, kwargs):  # the TypeError Python raises for a call that does not fit the signature
            given = dict(zip(names, args, strict=False))
            for key in kwargs:
                if key not in found:
                    raise TypeError(f"{where} got an unexpected keyword argument {key!r}")
                if key in given:
                    raise TypeError(f"{where} got multiple values for argument {key!r}")
            if len(args) > n:
                takes = f"from {n - optional + 1} to {n + 1}" if optional else n + 1
                raise TypeError(f"{where} takes {takes} positional argument{'s' * bool(n)} but {len(args) + 1} were given")
            missing = [repr(name) for name in required if name not in given | kwargs]
            listed = " and ".join(missing) if len(missing) < 3 else ", ".join(missing[:-1]) + ", and " + missing[-1]
            raise TypeError(f"{where} missing {len(missing)} required positional argument{'s' * (len(missing) > 1)}: {listed}")

        def __init__(self, *args, **kwargs):
            if kwargs or len(args) != n:
                values = dict(template)
                if args:
                    if len(args) > n or not kwargs.keys().isdisjoint(names[:len(args)]):
                        refuse(args, kwargs)
                    values.update(zip(names, args))  # noqa: B905 (fewer args than names)
                values.update(kwargs)
                if len(values) != n or not kwargs.keys() >= need[len(args)]:
                    refuse(args, kwargs)
                for name, factory in factories:
                    if values[name] is MISSING:
                        values[name] = factory()
            else:
                values = zip(names, args)  # noqa: B905 (as many: strict= costs ~0.1 us here)
            if fast:  # as object.__setattr__ would (a frozen class's own __setattr__ refuses)
                self.__dict__.update(values)
            else:
                for name, value in dict(values).items():
                    setattr(self, name, value)
            if post_init:
                self.__post_init__()

        def __repr__(self):
            return f"{self.__class__.__qualname__}({', '.join(f'{k}={getattr(self, k)!r}' for k in names)})"

        def __eq__(self, other):
            if other.__class__ is self.__class__:
                return tuple(getattr(self, k) for k in names) == tuple(getattr(other, k) for k in names)
            return NotImplemented

        def __hash__(self):
            return hash(tuple(getattr(self, k) for k in names))

        def __setattr__(self, name, value):
            if type(self) is cls or name in found:
                raise FrozenInstanceError(f"cannot assign to field {name!r}")
            super(cls, self).__setattr__(name, value)

        def __delattr__(self, name):
            if type(self) is cls or name in found:
                raise FrozenInstanceError(f"cannot delete field {name!r}")
            super(cls, self).__delattr__(name)

        # as the stdlib: the class's own methods are kept, and its own __hash__ (not the None its own __eq__ implies)
        keep_hash = "__hash__" in own and not (own["__hash__"] is None and "__eq__" in own)
        for method in (__init__, __repr__, __eq__) + ((__setattr__, __delattr__) if frozen else ()):
            if method.__name__ not in own:
                method.__qualname__ = f"{cls.__qualname__}.{method.__name__}"
                setattr(cls, method.__name__, method)
        if not keep_hash:
            __hash__.__qualname__ = f"{cls.__qualname__}.__hash__"
            cls.__hash__ = __hash__ if frozen else None
        if "__match_args__" not in own:
            cls.__match_args__ = names
        return cls
