"""One host's variables with their Jinja templates rendered, as Ansible renders them.

The precedence chain is applied first (groups, the host, ``-e``:
``herd.inventory.graph``); a value holding a template is then rendered the
first time it is read: the connection variables when the host is made, the
others when something reads them (``herd hosts --json`` reads them all), as
Ansible renders a variable when a task uses it. So a variable naming a fact
herd does not gather breaks only what reads it.

A template sees the host's other variables (rendered in turn: a loop of
references is an error naming it) and the magic variables Ansible has without
facts or a play: ``inventory_hostname``, ``inventory_hostname_short``,
``group_names`` and ``groups``. Not ``hostvars``: reaching into other hosts
would make one host's variables depend on others being resolved, and
ansible-core itself leaves ``hostvars`` undefined in a variable read through
``hostvars``; naming it is an error that says so.

Every failure names the host and the variable; a value rendered from a
secret-named variable is reported as secret itself (``from_secret``).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterator, Mapping, Sequence

from jinja2.exceptions import TemplateSyntaxError, UndefinedError

from herd.errors import InventoryError
from herd.inventory.templating import REFUSED_NAMES, Failure, Templates, broken, undefined
from herd.inventory.variables import SECRET_VARIABLE, contains_template

__all__ = ["GroupsView", "HostScope", "RenderError", "RenderedVars", "host_magic"]

_MISSING = object()


class RenderError(InventoryError):
    """A variable of a host could not be rendered; ``undefined`` when it named an undefined one.

    ``used_by`` lists the variables that failed because they use it, innermost first;
    a loop of references (``loop``) already names every variable in it.
    """

    def __init__(
        self,
        host: str,
        variable: str,
        problem: str,
        *,
        undefined: bool = False,
        loop: bool = False,
        used_by: tuple[str, ...] = (),
    ) -> None:
        chain = f" (used by {' <- '.join(map(repr, used_by))})" if used_by else ""
        super().__init__(f"host {host!r}, variable {variable!r}{chain}: {problem}")
        self.host, self.variable, self.problem = host, variable, problem
        self.undefined = undefined
        self.loop = loop
        self.used_by = used_by

    def through(self, user: str) -> RenderError:
        """This error as it surfaces in variable ``user``, which uses the failed one."""
        if self.loop or user == self.variable or user in self.used_by:
            return self
        return RenderError(
            self.host,
            self.variable,
            self.problem,
            undefined=self.undefined,
            used_by=(*self.used_by, user),
        )


class GroupsView(Mapping[str, list[str]]):
    """Ansible's ``groups``: every group's hosts, listed only when a template asks for them."""

    __slots__ = ("_members", "_names")

    def __init__(self, names: Sequence[str], members: Callable[[str], list[str]]) -> None:
        self._names = names
        self._members = members

    def __getitem__(self, group: str) -> list[str]:
        if group not in self._names:
            raise KeyError(group)
        return list(self._members(group))

    def __iter__(self) -> Iterator[str]:
        return iter(self._names)

    def __len__(self) -> int:
        return len(self._names)


def host_magic(name: str, groups: Sequence[str]) -> dict[str, object]:
    """``inventory_hostname``, ``inventory_hostname_short`` and ``group_names`` for a host."""
    short = name.split(".", maxsplit=1)[0]
    if short != name and (":" in name or name.replace(".", "").isdigit()):
        try:  # an address is its own short name (only parsed when it may be one: it is slow)
            ipaddress.ip_address(name)
            short = name
        except ValueError:
            pass
    return {
        "inventory_hostname": name,
        "inventory_hostname_short": short,
        "group_names": list(groups),
    }


def _refusal(name: str) -> str:
    if name == "hostvars":
        return (
            "hostvars is not available in inventory variables: herd renders each host's"
            " variables on their own"
        )
    return f"{name}() is not available: herd renders inventory variables only (no lookups, no code)"


class HostScope:
    """One host's merged variables, each rendered once, on first use."""

    __slots__ = ("_active", "_done", "_host", "_magic", "_secret", "_templates", "values")

    def __init__(
        self,
        host: str,
        values: Mapping[str, object],
        magic: Mapping[str, object],
        templates: Templates,
    ) -> None:
        self._host = host
        self.values = values
        self._magic = magic
        self._templates = templates
        self._done: dict[str, object] = {}
        self._active: list[str] = []
        self._secret: set[str] = set()

    def value(self, name: str) -> object:
        """The rendered value of variable ``name``; ``RenderError`` when it cannot be rendered."""
        done = self._done.get(name, _MISSING)
        if done is _MISSING:
            raw = self.values[name]
            if not contains_template(raw):
                done = raw
            elif name in self._active:
                loop = [*self._active[self._active.index(name) :], name]
                raise RenderError(
                    self._host, name, "refers back to itself: " + " -> ".join(loop), loop=True
                )
            else:
                self._active.append(name)
                names: set[str] = set()  # what its templates looked up
                try:
                    done = self._render(name, raw, names)
                    if any(SECRET_VARIABLE.search(n) or n in self._secret for n in names):
                        self._secret.add(name)
                except RenderError as exc:
                    done = exc
                finally:
                    self._active.pop()
            self._done[name] = done
        if isinstance(done, RenderError):
            raise done
        return done

    def from_secret(self, name: str) -> bool:
        """Whether the value of ``name`` was rendered from a secret-named variable."""
        self.value(name)
        return name in self._secret

    def _render(self, name: str, raw: object, names: set[str]) -> object:
        """``raw`` with every template in it rendered (in lists and mappings' values too)."""
        if type(raw) is str:
            return self._render_text(name, raw, names) if contains_template(raw) else raw
        if isinstance(raw, list):
            return [self._render(name, item, names) for item in raw]
        if isinstance(raw, dict):
            return {key: self._render(name, item, names) for key, item in raw.items()}
        return raw

    def _render_text(self, name: str, source: str, names: set[str]) -> object:
        try:
            compiled = self._templates.compile(source)
        except TemplateSyntaxError as exc:
            raise RenderError(self._host, name, f"template {source!r}: {_hinted(exc)}") from None
        except ValueError as exc:
            raise RenderError(self._host, name, str(exc)) from None
        context: dict[str, object] = {}
        for ref in compiled.names:
            found = self._lookup(name, ref)
            if found is not _MISSING:
                context[ref] = found
                names.add(ref)
        try:
            return compiled.render(context)
        except Failure as exc:  # a variable it uses failed: say which, and through what
            inner = exc.error
            raise inner.through(name) if isinstance(inner, RenderError) else inner from None
        except UndefinedError as exc:
            raise RenderError(self._host, name, _hinted(exc), undefined=True) from None
        except Exception as exc:  # a filter's or Jinja's own error, said in one line
            raise RenderError(self._host, name, _hinted(exc)) from None

    def _lookup(self, name: str, ref: str) -> object:
        """What ``ref`` means in a template of variable ``name``: magic, a variable, or refused."""
        if ref in self._magic:
            return self._magic[ref]
        if ref in self.values:
            try:
                return self.value(ref)
            except RenderError as exc:
                return undefined(ref, exc) if exc.undefined else broken(ref, exc)
        if ref == "hostvars" or ref in REFUSED_NAMES:
            return broken(ref, RenderError(self._host, name, _refusal(ref)))
        return _MISSING


def _hinted(exc: Exception) -> str:
    message = str(getattr(exc, "message", None) or exc) or type(exc).__name__
    if "No filter named" in message or "No test named" in message:
        from herd.inventory.filters import ANSIBLE_FILTERS

        known = ", ".join(sorted({*ANSIBLE_FILTERS, "default", "mandatory"}))
        message += f" (herd has Jinja's built-in filters and tests, and Ansible's {known})"
    return message


class RenderedVars(Mapping[str, object]):
    """A host's variables for the rest of herd: a read-only mapping that renders on access."""

    __slots__ = ("_scope",)

    def __init__(self, scope: HostScope) -> None:
        self._scope = scope

    def __getitem__(self, key: str) -> object:
        if key not in self._scope.values:
            raise KeyError(key)
        return self._scope.value(key)

    def __iter__(self) -> Iterator[str]:
        return iter(self._scope.values)

    def __len__(self) -> int:
        return len(self._scope.values)

    def __contains__(self, key: object) -> bool:
        return key in self._scope.values

    def from_secret(self, key: str) -> bool:
        """Whether the value of ``key`` was rendered from a secret (so ``herd hosts`` masks it)."""
        return self._scope.from_secret(key)

    def __repr__(self) -> str:
        return f"RenderedVars({list(self._scope.values)!r})"
