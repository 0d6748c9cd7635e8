"""The Jinja environment inventory variables are rendered in, shaped like ansible-core's.

- **Sandboxed and variables only**: Jinja's immutable sandbox; no ``lookup``,
  ``query``/``q``, ``now``, ``omit`` or ``undef`` (what a template names must be
  a variable, a magic variable or a Jinja built-in such as ``range``).
- **Undefined is an error** where a value is used, yet chains as Ansible's does:
  ``{{ a.b | default('x') }}`` gives ``x`` when ``a`` is undefined, and
  ``{{ x is defined }}`` asks without failing.
- **Types as ansible-core 2.19 renders them**: a template made of one
  expression keeps its value's type (``"{{ port + 1 }}"`` is a number,
  ``"{{ [1, 2] }}"`` a list), several parts join into text (``None`` as
  nothing), a template that writes nothing is ``None``; trailing newlines of the
  source are kept. Text is never re-read as a literal (``"{{ '22' }}"`` stays
  text), as in ansible-core and unlike Jinja's own native mode.
- **Filters**: Jinja's built-in ones (bar ``random``) and the Ansible ones in
  ``herd.inventory.filters``; Jinja's tests. Anything else is an error.

Jinja2 is imported only by this module, and only once an inventory holds a template.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from jinja2 import ChainableUndefined, StrictUndefined, Template, Undefined, meta, nodes
from jinja2.exceptions import UndefinedError
from jinja2.filters import FILTERS
from jinja2.lexer import TOKEN_STRING, TOKEN_VARIABLE_BEGIN, TOKEN_VARIABLE_END, Lexer
from jinja2.nativetypes import NativeCodeGenerator
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.tests import TESTS

from herd.inventory.filters import ANSIBLE_FILTERS, FilterError

__all__ = [
    "REFUSED_NAMES",
    "Compiled",
    "Failure",
    "Templates",
    "broken",
    "undefined",
]

# ansible-core's globals that reach outside the variables; herd has none of them.
REFUSED_NAMES = frozenset({"lookup", "query", "q", "now", "omit", "undef"})


class Failure(UndefinedError):
    """Raised through Jinja when a marker is used: carries the error that made the marker."""

    def __init__(self, error: Exception) -> None:
        super().__init__(str(error))
        self.error = error


class _Undefined(ChainableUndefined, StrictUndefined):
    """Fails when used (printed, compared, iterated), but allows ``a.b.c | default(...)``."""

    __slots__ = ()


class _Broken(_Undefined):
    """A variable that failed for another reason than an undefined name: ``default`` keeps it."""

    __slots__ = ()


def _failing(error: Exception) -> type[UndefinedError]:
    """An exception factory for Jinja's undefined objects that raises ``error`` (in a Failure)."""
    return functools.partial(_raise_failure, error)  # type: ignore[return-value]


def _raise_failure(error: Exception, _message: str | None = None) -> Failure:
    return Failure(error)


def undefined(name: str, error: Exception) -> Undefined:
    """A variable that is undefined because something it names is: ``default`` replaces it."""
    return _Undefined(name=name, exc=_failing(error))


def broken(name: str, error: Exception) -> Undefined:
    """A variable that cannot be rendered (a loop, a refused lookup): it fails wherever used."""
    return _Broken(name=name, exc=_failing(error))


def _default(value: object, default_value: object = "", boolean: bool = False) -> object:
    """Jinja's ``default`` as Ansible has it: a broken variable is not replaced, it fails."""
    if not isinstance(boolean, bool):
        raise FilterError(f"default: boolean must be true or false, not {boolean!r}")
    if isinstance(value, _Broken):
        return value
    if isinstance(value, Undefined) or (boolean and not value):
        return default_value
    return value


def _mandatory(value: object, msg: str | None = None) -> object:
    if isinstance(value, Undefined):
        if msg is not None and not isinstance(value, _Broken):
            raise FilterError(msg)
        value._fail_with_undefined_error()
    return value


def _defined(value: object) -> bool:
    if isinstance(value, _Broken):
        value._fail_with_undefined_error()
    return not isinstance(value, Undefined)


class _CodeGenerator(NativeCodeGenerator):
    """Native output as ansible-core makes it: only the text between blocks is a constant.

    Everything in ``{{ }}`` is evaluated when rendering (never folded into text
    at compile time), so ``{{ 22 }}`` stays a number and ``a{{ none }}b`` is ``ab``.
    """

    def _output_const_repr(self, group: Iterable[Any]) -> str:
        pieces = list(group)
        return repr(pieces[0]) if len(pieces) == 1 else repr("".join(map(str, pieces)))

    def _output_child_to_const(self, node: nodes.Expr, frame: Any, finalize: Any) -> Any:
        if not isinstance(node, nodes.TemplateData):
            raise nodes.Impossible()
        return node.as_const(frame.eval_ctx)


class _Lexer(Lexer):
    r"""Backslashes in a quoted string inside ``{{ }}`` stay backslashes, as in ansible-core.

    The YAML value ``"{{ name | regex_replace('^(\\w+)$', '\\1') }}"`` reaches
    Jinja as ``'\1'`` once YAML has read it; Jinja alone would read that as
    the character 0x01, ansible-core (and herd) as the backreference.
    """

    def tokeniter(self, *args: Any, **kwargs: Any) -> Iterator[tuple[int, str, str]]:
        inside = False
        for line, kind, value in super().tokeniter(*args, **kwargs):
            if kind == TOKEN_VARIABLE_BEGIN:
                inside = True
            elif kind == TOKEN_VARIABLE_END:
                inside = False
            escaped = inside and kind == TOKEN_STRING
            yield line, kind, value.replace("\\", "\\\\") if escaped else value


def _concat(values: Iterable[Any]) -> Any:
    """ansible-core's joining of a template's output: nothing is None, one piece keeps its type."""
    pieces = list(values)
    if not pieces:
        return None
    if len(pieces) == 1:
        return pieces[0]
    return "".join("" if piece is None else str(piece) for piece in pieces)


class _Environment(ImmutableSandboxedEnvironment):
    code_generator_class = _CodeGenerator
    concat = staticmethod(_concat)

    @property
    def lexer(self) -> Lexer:
        found = self.__dict__.get("_herd_lexer")
        if found is None:
            found = self.__dict__["_herd_lexer"] = _Lexer(self)
        return found


def _environment() -> _Environment:
    environment = _Environment(undefined=_Undefined, trim_blocks=True, autoescape=False)
    filters = {name: f for name, f in FILTERS.items() if name != "random"}
    environment.filters = {**filters, **ANSIBLE_FILTERS, "default": _default, "d": _default,
                           "mandatory": _mandatory}  # fmt: skip
    environment.tests = {**TESTS, "defined": _defined,
                         "undefined": lambda value: not _defined(value)}  # fmt: skip
    return environment


@dataclass(frozen=True, slots=True)
class Compiled:
    """One template source, compiled once, with the names it looks up."""

    source: str
    template: Template
    names: frozenset[str]

    def render(self, context: Mapping[str, object]) -> object:
        """The value, finalised: containers become lists and dicts; a marker left in it fails."""
        result = _finalize(self.template.render(context))
        if isinstance(result, str):
            missing = _trailing_newlines(self.source) - _trailing_newlines(result)
            if missing > 0:
                result += "\n" * missing
        return result


def _trailing_newlines(text: str) -> int:
    return len(text) - len(text.rstrip("\n"))


def _finalize(value: object) -> object:
    if isinstance(value, Undefined):
        value._fail_with_undefined_error()
    if type(value) in (str, int, float, bool) or value is None:
        return value
    if isinstance(value, Mapping):
        return {key: _finalize(item) for key, item in value.items()}
    if isinstance(value, range):
        raise TypeError("a range is not a value a variable can hold: write range(...) | list")
    if isinstance(value, str):
        return str(value)  # Markup and other text types become plain text
    if isinstance(value, Iterable) and not isinstance(value, bytes):
        return [_finalize(item) for item in value]
    return value


class Templates:
    """Compiles template sources once each (an inventory repeats the same few on many hosts)."""

    def __init__(self) -> None:
        self._environment = _environment()
        self._compiled: dict[str, Compiled] = {}

    def compile(self, source: str) -> Compiled:
        """The compiled template; Jinja's ``TemplateSyntaxError`` for a bad one."""
        found = self._compiled.get(source)
        if found is None:
            if source.startswith("#jinja2:"):
                raise ValueError("herd does not read #jinja2: overrides in inventory values")
            tree = self._environment.parse(source)
            names = frozenset(meta.find_undeclared_variables(tree))
            template = self._environment.from_string(tree)
            found = self._compiled[source] = Compiled(source, template, names)
        return found
