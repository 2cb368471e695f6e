"""orch.record: the same records built by the standard ``dataclasses`` and by orch's own, behaving the same."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import types
import typing
from typing import ClassVar

import pytest

from orch import record

STD = types.SimpleNamespace(name="dataclasses", **{k: getattr(dataclasses, k) for k in record.__all__})
OWN = types.SimpleNamespace(name="orch.record", **{k: getattr(record, k) for k in record.__all__})


def build(lib):
    """The sample records, decorated by ``lib``."""
    dataclass, field = lib.dataclass, lib.field

    @dataclass
    class Point:
        x: int
        y: int = 0

    @dataclass
    class Bag:
        name: str
        items: list[str] = field(default_factory=list)
        tags: dict[str, str] = field(default_factory=dict)
        note: str = field(default="n")

    @dataclass(frozen=True)
    class Frozen:
        a: int
        b: str = "b"
        c: tuple[int, ...] = ()

    @dataclass
    class Kinds:
        kind: ClassVar[str] = "k"
        other: typing.ClassVar[int] = 1
        x: int = 5

    @dataclass
    class Empty:
        pass

    @dataclass
    class Derived:
        a: int
        double: int = 0

        def __post_init__(self):
            self.double = self.a * 2

    @dataclass(frozen=True)
    class FrozenDerived:
        a: int
        double: int = 0

        def __post_init__(self):
            object.__setattr__(self, "double", self.a * 2)

    @dataclass(frozen=True)
    class FrozenAssigns:
        a: int

        def __post_init__(self):
            self.a = 2

    @dataclass
    class Base:
        a: int
        b: int = 1

    @dataclass
    class Child(Base):
        c: int = 2
        a: int = 10  # redefined: keeps its place, takes the new default

    @dataclass
    class Own:
        a: int

        def __repr__(self):
            return "own"

        def __eq__(self, other):
            return True

        def __hash__(self):
            return 7

    # not under `from __future__ import annotations`: the ClassVar annotation is an object
    Objects = dataclass(type("Objects", (), {"__annotations__": {"k": ClassVar[int], "x": int}, "k": 3}))
    return types.SimpleNamespace(**{k: v for k, v in locals().items() if isinstance(v, type)})


STD_NS, OWN_NS = build(STD), build(OWN)
BOTH = pytest.mark.parametrize("lib,ns", [(STD, STD_NS), (OWN, OWN_NS)], ids=["dataclasses", "orch.record"])


def outcome(call):
    """What a call gives: its value's repr, or its exception's type name and message."""
    try:
        return repr(call())
    except Exception as exc:  # noqa: BLE001
        return type(exc).__name__, str(exc)


@pytest.mark.parametrize("make", [
    lambda ns: ns.Point(1),
    lambda ns: ns.Point(1, 2),
    lambda ns: ns.Point(x=1, y=2),
    lambda ns: ns.Point(y=2, x=1),
    lambda ns: ns.Point(1, y=3),
    lambda ns: ns.Point(),
    lambda ns: ns.Point(y=1),
    lambda ns: ns.Point(1, 2, 3),
    lambda ns: ns.Point(1, z=3),
    lambda ns: ns.Point(1, x=3),
    lambda ns: ns.Point(1, 2, 3, z=1),
    lambda ns: ns.Bag("b"),
    lambda ns: ns.Bag("b", ["i"], note="x"),
    lambda ns: ns.Bag(),
    lambda ns: ns.Bag("a", [], {}, "n", 5),
    lambda ns: ns.Frozen(1),
    lambda ns: ns.Frozen(1, "x", (1, 2)),
    lambda ns: ns.Frozen(),
    lambda ns: ns.Frozen(1, 2, 3, 4),
    lambda ns: ns.Kinds(),
    lambda ns: ns.Kinds(3),
    lambda ns: ns.Kinds(kind="x"),
    lambda ns: ns.Empty(),
    lambda ns: ns.Empty(1),
    lambda ns: ns.Derived(3),
    lambda ns: ns.FrozenDerived(3),
    lambda ns: ns.FrozenAssigns(1),
    lambda ns: ns.Child(),
    lambda ns: ns.Child(1, 2, 3),
    lambda ns: ns.Child(c=5),
    lambda ns: ns.Own(1),
    lambda ns: ns.Objects(4),
    lambda ns: ns.Objects(),
    lambda ns: ns.Bag("nested", [ns.Point(1)]),
])
def test_init_and_repr_as_the_stdlib(make):
    """The same value (by repr) or the same TypeError message, positional, keyword, defaults, errors."""
    assert outcome(lambda: make(OWN_NS)) == outcome(lambda: make(STD_NS))


def test_errors_are_the_ones_python_raises():
    assert outcome(lambda: OWN_NS.Point()) == ("TypeError", "build.<locals>.Point.__init__() missing 1 required "
                                                       "positional argument: 'x'")
    assert outcome(lambda: OWN_NS.Point(1, 2, 3))[1].endswith("takes from 2 to 3 positional arguments but 4 were given")
    assert outcome(lambda: OWN_NS.Point(1, z=2))[1].endswith("got an unexpected keyword argument 'z'")
    assert outcome(lambda: OWN_NS.Point(1, x=2))[1].endswith("got multiple values for argument 'x'")


@BOTH
def test_values_defaults_and_factories(lib, ns):
    p = ns.Point(1)
    assert (p.x, p.y) == (1, 0)
    assert ns.Point(y=3, x=2).y == 3
    one, two = ns.Bag("a"), ns.Bag("b")
    assert one.items == [] and one.tags == {} and one.note == "n"
    assert one.items is not two.items and one.tags is not two.tags  # a fresh list per instance
    given = ["x"]
    assert ns.Bag("c", given).items is given
    assert ns.Point.y == 0 and not hasattr(ns.Bag, "items") and ns.Bag.note == "n"  # class attributes as stdlib
    assert ns.Kinds().kind == "k" and "kind" not in vars(ns.Kinds())
    assert ns.Derived(4).double == 8 and ns.FrozenDerived(4).double == 8
    assert list(vars(ns.Bag("z", note="q"))) == ["name", "items", "tags", "note"]  # set in field order
    with pytest.raises(lib.FrozenInstanceError):  # a frozen __post_init__ must use object.__setattr__
        ns.FrozenAssigns(1)


@BOTH
def test_eq_and_hash(lib, ns):
    assert ns.Point(1, 2) == ns.Point(1, 2)
    assert ns.Point(1, 2) != ns.Point(2, 1)
    assert not (ns.Point(1, 2) != ns.Point(1, 2))
    assert ns.Point(1, 0) != ns.Derived(1, 0) and ns.Point(1, 2) != (1, 2)
    assert ns.Point.__eq__(ns.Point(1), (1, 0)) is NotImplemented
    assert ns.Empty() == ns.Empty()
    assert ns.Point.__hash__ is None
    with pytest.raises(TypeError):
        hash(ns.Point(1))
    assert ns.Frozen(1) == ns.Frozen(1) and hash(ns.Frozen(1)) == hash(ns.Frozen(1))
    assert hash(ns.Frozen(1, "x", (2,))) == hash((1, "x", (2,)))
    assert len({ns.Frozen(1), ns.Frozen(1), ns.Frozen(2)}) == 2
    own = ns.Own(1)
    assert repr(own) == "own" and own == 5 and hash(own) == 7  # the class's own methods are kept


@BOTH
def test_frozen(lib, ns):
    f = ns.Frozen(1)
    assert issubclass(lib.FrozenInstanceError, AttributeError)
    with pytest.raises(lib.FrozenInstanceError, match="cannot assign to field 'a'"):
        f.a = 2
    with pytest.raises(AttributeError):
        f.b = "y"
    with pytest.raises(lib.FrozenInstanceError, match="cannot delete field 'a'"):
        del f.a
    with pytest.raises(lib.FrozenInstanceError):
        f.new = 1
    assert f.a == 1
    p = ns.Point(1)
    p.x = 5
    assert p.x == 5  # not frozen


@BOTH
def test_fields(lib, ns):
    assert [f.name for f in lib.fields(ns.Bag)] == ["name", "items", "tags", "note"]
    assert [f.name for f in lib.fields(ns.Bag("x"))] == ["name", "items", "tags", "note"]
    assert [f.name for f in lib.fields(ns.Kinds)] == ["x"]
    assert [f.name for f in lib.fields(ns.Objects)] == ["x"]
    assert [f.name for f in lib.fields(ns.Child)] == ["a", "b", "c"]
    assert lib.fields(ns.Empty) == ()
    assert [(f.type, f.default) for f in lib.fields(ns.Point)][1] == ("int", 0)
    assert lib.fields(ns.Bag)[1].default_factory is list
    with pytest.raises(TypeError, match="must be called with a dataclass type or instance"):
        lib.fields(object())


@BOTH
def test_replace(lib, ns):
    bag = ns.Bag("a", ["i"])
    new = lib.replace(bag, note="m")
    assert new == ns.Bag("a", ["i"], {}, "m") and new is not bag and bag.note == "n"
    assert new.items is bag.items  # kept as it is, not made again
    f = ns.Frozen(1, "x")
    assert lib.replace(f, b="y") == ns.Frozen(1, "y") and f.b == "x"
    assert lib.replace(ns.Derived(2), a=5).double == 10  # __post_init__ runs again
    with pytest.raises(TypeError, match="unexpected keyword argument 'nope'"):
        lib.replace(f, nope=1)
    with pytest.raises(TypeError, match="replace\\(\\) should be called on dataclass instances"):
        lib.replace(ns.Frozen, a=1)


@BOTH
def test_match(lib, ns):
    assert ns.Point.__match_args__ == ("x", "y") and ns.Kinds.__match_args__ == ("x",)
    match ns.Point(1, 2):
        case ns.Point(a, b) if (a, b) == (1, 2):
            pass
        case _:
            pytest.fail("positional class pattern")
    match ns.Frozen(3):
        case ns.Frozen(a=3):
            pass
        case _:
            pytest.fail("keyword class pattern")


@pytest.mark.parametrize("source,error", [
    ("class C:\n    a: list = []", ValueError),
    ("class C:\n    a: dict = field(default={})", ValueError),
    ("class C:\n    a: set = set()", ValueError),
    ("class C:\n    a: int = 1\n    b: int", TypeError),
    ("class C:\n    a: int = field(default=1, default_factory=int)", ValueError),
    ("class C:\n    a = field(default=1)", TypeError),
])
def test_bad_classes(source, error):
    """A mutable default, a field without a default after one with a default, both kinds of default, a field()
    without annotation: refused when the class is made, with the stdlib's messages."""
    messages = []
    for lib in (STD, OWN):
        with pytest.raises(error) as caught:
            exec("@dataclass\n" + source, {"dataclass": lib.dataclass, "field": lib.field})  # noqa: S102
        messages.append(str(caught.value))
    assert messages[0] == messages[1]


def test_imports_nothing_costly():
    """orch.record is there to keep dataclasses (and inspect, typing...) out of orch's start-up."""
    code = ("import sys; before = set(sys.modules); import orch.record; "
            "print(sorted(set(sys.modules) - before))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    loaded = set(eval(out))  # noqa: S307
    assert loaded <= {"orch", "orch.record"}, loaded
    assert not loaded & {"dataclasses", "inspect", "typing", "re", "copy"}
