"""Canonical, strict CBOR for every seqnet message.

Why: signatures and hashes are taken over bytes, so a value must have exactly one
encoding, and anything a peer sends must be rejected cheaply and with a reason.

Theory of operation: a message is a frozen dataclass. Its fields become a CBOR map
with integer keys 1, 2, 3, ... in declaration order. Field types are limited to
``int`` (unsigned 64-bit unless annotated), ``bool``, ``bytes``, ``str``,
``X | None``, ``tuple[X, ...]``, fixed tuples, nested dataclasses and generic
dataclasses. Lengths are capped with ``Annotated[..., Size(...)]`` /
``MaxItems(...)``. Decoding checks the size cap *before* parsing, parses with no
tags, no indefinite lengths and no duplicate keys, re-encodes to prove the input
was canonical (this also rejects trailing bytes) and then checks the schema
field by field. Every failure is a :class:`DecodeError`; nothing else escapes.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import cbor2

MAX_MESSAGE_BYTES = 8 * 1024 * 1024
MAX_BYTES_FIELD = 4 * 1024 * 1024
MAX_ITEMS = 4096
MAX_DEPTH = 24
U64_MAX = 2**64 - 1

T = TypeVar("T")


class DecodeError(ValueError):
    """Raised for any input that is not exactly one valid, canonical message."""


@dataclass(frozen=True, slots=True)
class Size:
    """Length bounds of a ``bytes`` or ``str`` field."""

    exact: int | None = None
    max: int = MAX_BYTES_FIELD


@dataclass(frozen=True, slots=True)
class MaxItems:
    """Upper bound on the number of items in a ``tuple[X, ...]`` field."""

    max: int


@dataclass(frozen=True, slots=True)
class IntRange:
    """Inclusive bounds of an ``int`` field (default: unsigned 64-bit)."""

    lo: int = 0
    hi: int = U64_MAX


Digest = typing.Annotated[bytes, Size(exact=32)]
Signature = typing.Annotated[bytes, Size(exact=64)]
PublicKey = typing.Annotated[bytes, Size(exact=32)]

ToPlain = Callable[[Any], Any]
FromPlain = Callable[[Any, str], Any]


@dataclass(frozen=True, slots=True)
class _Converter:
    to_plain: ToPlain
    from_plain: FromPlain
    accepts: Callable[[Any], bool] | None = None  # a leaf's check, for containers' fast paths


_COMPILED: dict[Any, _Converter] = {}


def _fail(path: str, why: str) -> typing.NoReturn:
    raise DecodeError(f"{path}: {why}")


def _int_converter(bounds: IntRange) -> _Converter:
    lo, hi = bounds.lo, bounds.hi

    def from_plain(v: Any, path: str) -> int:
        if type(v) is not int:
            _fail(path, f"expected int, got {type(v).__name__}")
        if not lo <= v <= hi:
            _fail(path, f"int {v} out of range [{lo}, {hi}]")
        return v

    def accepts(v: Any) -> bool:
        return type(v) is int and lo <= v <= hi

    return _Converter(_identity, from_plain, accepts)


def _sized_converter(kind: type, size: Size) -> _Converter:
    exact, most = size.exact, size.max

    def from_plain(v: Any, path: str) -> Any:
        if type(v) is not kind:
            _fail(path, f"expected {kind.__name__}, got {type(v).__name__}")
        length = len(typing.cast(bytes, v))
        if exact is not None and length != exact:
            _fail(path, f"length {length} != {exact}")
        if length > most:
            _fail(path, f"length {length} > {most}")
        return v

    def accepts(v: Any) -> bool:
        if type(v) is not kind:
            return False
        length = len(typing.cast(bytes, v))
        return length == exact if exact is not None else length <= most

    return _Converter(_identity, from_plain, accepts)


def _bool_from_plain(v: Any, path: str) -> bool:
    if type(v) is not bool:
        _fail(path, f"expected bool, got {type(v).__name__}")
    return bool(v)


def _identity(v: Any) -> Any:
    return v


def _optional_converter(inner: _Converter) -> _Converter:
    def to_plain(v: Any) -> Any:
        return None if v is None else inner.to_plain(v)

    def from_plain(v: Any, path: str) -> Any:
        return None if v is None else inner.from_plain(v, path)

    if inner.accepts is None or inner.to_plain is not _identity:
        return _Converter(to_plain, from_plain)
    inner_accepts = inner.accepts

    def accepts(v: Any) -> bool:
        return v is None or inner_accepts(v)

    return _Converter(_identity, from_plain, accepts)


def _list_of(v: Any, path: str, limit: int) -> list[Any]:
    if type(v) is not list:
        _fail(path, f"expected array, got {type(v).__name__}")
    if len(v) > limit:
        _fail(path, f"{len(v)} items > {limit}")
    return v


def _variadic_tuple_converter(inner: _Converter, limit: int) -> _Converter:
    def each_to_plain(v: Any) -> Any:
        return [inner.to_plain(x) for x in v]

    # CBOR encodes a tuple as an array: a tuple of leaves needs no conversion
    to_plain = _identity if inner.to_plain is _identity else each_to_plain
    item_from = inner.from_plain

    def from_plain(v: Any, path: str) -> Any:
        items = _list_of(v, path, limit)
        try:
            return tuple([item_from(x, path) for x in items])  # no per-item path strings
        except DecodeError:
            for i, x in enumerate(items):  # name the offending item exactly
                item_from(x, f"{path}[{i}]")
            raise

    return _Converter(to_plain, from_plain)


def _fixed_tuple_converter(inners: Sequence[_Converter]) -> _Converter:
    def each_to_plain(v: Any) -> Any:
        return [c.to_plain(x) for c, x in zip(inners, v, strict=True)]

    leaves = all(c.to_plain is _identity for c in inners)  # a tuple of leaves encodes as it is
    to_plain = _identity if leaves else each_to_plain
    froms = [c.from_plain for c in inners]

    def checked(v: Any, path: str) -> Any:
        items = _list_of(v, path, len(inners))
        if len(items) != len(froms):
            _fail(path, f"expected {len(inners)} items, got {len(items)}")
        try:
            return tuple([f(x, path) for f, x in zip(froms, items, strict=True)])
        except DecodeError:
            for i, (f, x) in enumerate(zip(froms, items, strict=True)):
                f(x, f"{path}[{i}]")
            raise

    checks = [c.accepts for c in inners]
    if len(checks) != 2 or None in checks:
        return _Converter(to_plain, checked)
    first, second = typing.cast(list[Callable[[Any], bool]], checks)

    def pair(v: Any, path: str) -> Any:
        """The common pair of leaves (a digest and a time, a signer and a signature), inline."""
        if type(v) is list and len(v) == 2 and first(v[0]) and second(v[1]):
            return (v[0], v[1])
        return checked(v, path)  # refuses it, naming the offending item

    return _Converter(to_plain, pair)


def _dataclass_converter(cls: type, typevars: dict[Any, Any]) -> _Converter:
    hints = typing.get_type_hints(cls, include_extras=True)
    names = [f.name for f in dataclasses.fields(cls) if f.init]
    convs = [_compile(_substitute(hints[name], typevars)) for name in names]
    keys = list(range(1, len(names) + 1))
    expected = set(keys)
    plan = list(zip(keys, names, convs, strict=True))

    def to_plain(v: Any) -> Any:
        return {k: c.to_plain(getattr(v, name)) for k, name, c in plan}

    def from_plain(v: Any, path: str) -> Any:
        if type(v) is not dict:
            _fail(path, f"expected map for {cls.__name__}, got {type(v).__name__}")
        if v.keys() != expected or any(type(k) is not int for k in v):
            _fail(path, f"{cls.__name__} fields {sorted(map(str, v))} != {keys}")
        try:
            kwargs = {name: c.from_plain(v[k], path) for k, name, c in plan}
        except DecodeError:
            for k, name, c in plan:  # name the offending field exactly
                c.from_plain(v[k], f"{path}.{name}")
            raise
        try:
            return cls(**kwargs)
        except (ValueError, TypeError) as exc:  # __post_init__ invariants
            _fail(path, f"invalid {cls.__name__}: {exc}")

    checks = [c.accepts for c in convs]
    if None in checks:
        return _Converter(to_plain, from_plain)
    return _Converter(to_plain, _leaves_fast_path(cls, keys, checks, from_plain))


def _leaves_fast_path(
    cls: type, keys: list[int], checks: list[Any], checked: FromPlain
) -> FromPlain:
    """A dataclass of leaves (a ciphertext, a tree node) checked inline, field by field.

    Anything the inline checks do not accept goes through ``checked``, which
    refuses it and names the offending field.
    """
    key_types = (int,) * len(keys)  # a bool key equals 1 or 0 but is not a field number

    def from_plain(v: Any, path: str) -> Any:
        if type(v) is dict and list(v) == keys and tuple(map(type, v)) == key_types:
            values = list(v.values())
            if all([ok(x) for ok, x in zip(checks, values, strict=True)]):
                try:
                    return cls(*values)
                except (ValueError, TypeError):
                    pass  # a __post_init__ invariant: ``checked`` says which
        return checked(v, path)

    return from_plain


def _substitute(tp: Any, typevars: dict[Any, Any]) -> Any:
    if isinstance(tp, TypeVar):
        return typevars[tp]
    return tp


def _compile(tp: Any) -> _Converter:
    cached = _COMPILED.get(tp)
    if cached is None:
        cached = _COMPILED[tp] = _build(tp)
    return cached


def _build(tp: Any) -> _Converter:
    origin = typing.get_origin(tp)
    if origin is typing.Annotated:
        base, *meta = typing.get_args(tp)
        return _build_annotated(base, meta)
    if tp is int:
        return _int_converter(IntRange())
    if tp is bool:
        return _Converter(_identity, _bool_from_plain)
    if tp in (bytes, str):
        return _sized_converter(tp, Size())
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) != 1 or len(typing.get_args(tp)) != 2:
            raise TypeError(f"only X | None unions are supported: {tp}")
        return _optional_converter(_compile(args[0]))
    if origin is tuple:
        return _build_tuple(typing.get_args(tp), MAX_ITEMS)
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        return _dataclass_converter(typing.cast(type, tp), {})
    if origin is not None and dataclasses.is_dataclass(origin):
        params = getattr(origin, "__parameters__", ())
        return _dataclass_converter(
            typing.cast(type, origin), dict(zip(params, typing.get_args(tp), strict=True))
        )
    raise TypeError(f"unsupported wire type: {tp!r}")


def _build_annotated(base: Any, meta: list[Any]) -> _Converter:
    for m in meta:
        if isinstance(m, Size):
            return _sized_converter(base, m)
        if isinstance(m, IntRange):
            return _int_converter(m)
        if isinstance(m, MaxItems):
            return _build_tuple(typing.get_args(base), m.max)
    return _compile(base)


def _build_tuple(args: tuple[Any, ...], limit: int) -> _Converter:
    if len(args) == 2 and args[1] is Ellipsis:
        return _variadic_tuple_converter(_compile(args[0]), limit)
    return _fixed_tuple_converter([_compile(a) for a in args])


def _reject_tag(_decoder: Any, tag: Any) -> Any:
    raise DecodeError(f"CBOR tag {tag.tag} not allowed")


def to_plain(value: Any, as_type: Any = None) -> Any:
    """The CBOR data model of a wire dataclass (maps with integer keys).

    ``as_type`` names a parameterized generic (``Signed[VoteData]``) for a value
    whose own class is the bare generic.
    """
    return _compile(as_type or type(value)).to_plain(value)


def dumps_plain(plain: Any) -> bytes:
    """Canonical CBOR of already plain data (used for sign bytes)."""
    return cbor2.dumps(plain, canonical=True)


def encode(value: Any, as_type: Any = None) -> bytes:
    """Canonical CBOR bytes of a wire dataclass (see ``to_plain`` for ``as_type``)."""
    return cbor2.dumps(to_plain(value, as_type), canonical=True)


def loads_canonical(data: bytes, *, max_bytes: int = MAX_MESSAGE_BYTES) -> Any:
    """Parse bytes into plain CBOR data, accepting only one canonical item."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise DecodeError(f"expected bytes, got {type(data).__name__}")
    data = bytes(data)
    if len(data) > max_bytes:
        raise DecodeError(f"message of {len(data)} bytes exceeds cap {max_bytes}")
    if not data:
        raise DecodeError("empty message")
    try:
        plain = cbor2.loads(
            data,
            tag_hook=_reject_tag,
            semantic_decoders={},
            allow_indefinite=False,
            allow_duplicate_keys=False,
            max_depth=MAX_DEPTH,
        )
        canonical = cbor2.dumps(plain, canonical=True)
    except DecodeError:
        raise
    except Exception as exc:  # cbor2 raises many types on hostile input
        raise DecodeError(f"malformed CBOR: {type(exc).__name__}: {exc}") from None
    if canonical != data:
        raise DecodeError("not canonical CBOR (or trailing bytes)")
    return plain


def from_plain(cls: type[T] | Any, plain: Any) -> T:
    """Build ``cls`` from plain CBOR data, checking the schema."""
    try:
        return typing.cast(T, _compile(cls).from_plain(plain, _type_name(cls)))
    except DecodeError:
        raise
    except RecursionError:
        raise DecodeError("nesting too deep") from None


def decode(cls: type[T] | Any, data: bytes, *, max_bytes: int = MAX_MESSAGE_BYTES) -> T:
    """Strictly decode one ``cls`` from canonical CBOR bytes."""
    return typing.cast(T, from_plain(cls, loads_canonical(data, max_bytes=max_bytes)))


def _type_name(cls: Any) -> str:
    return getattr(cls, "__name__", None) or str(cls)


class Family:
    """A message family: consecutive type ids 1..k, framed as ``[type_id, body]``.

    Why: a receiver decodes a frame into exactly one of the family's classes or
    rejects it, with no registry lookups by name and no open-ended type space.
    """

    def __init__(self, name: str, classes: Sequence[type]) -> None:
        self.name = name
        self.classes = tuple(classes)
        self._ids = {cls: i for i, cls in enumerate(self.classes, start=1)}
        for cls in self.classes:
            _compile(cls)

    def type_id(self, cls: type) -> int:
        return self._ids[cls]

    def encode(self, message: Any) -> bytes:
        tid = self._ids[type(message)]
        return cbor2.dumps([tid, to_plain(message)], canonical=True)

    def decode(self, data: bytes, *, max_bytes: int = MAX_MESSAGE_BYTES) -> Any:
        plain = loads_canonical(data, max_bytes=max_bytes)
        if type(plain) is not list or len(plain) != 2 or type(plain[0]) is not int:
            raise DecodeError(f"{self.name}: frame must be [type_id, body]")
        tid = plain[0]
        if not 1 <= tid <= len(self.classes):
            raise DecodeError(f"{self.name}: unknown type id {tid}")
        return from_plain(self.classes[tid - 1], plain[1])
