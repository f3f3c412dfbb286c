"""Registries of things found by name from a config: tasks, model factories, evaluators.

A paper package registers what it defines when it is imported; `common/` lists no
package. A config names a thing as

  "NAME"          already registered (by `common/` itself, or by a module imported earlier);
  "MODULE:NAME"   import MODULE (e.g. `mypackage.task`, `mypackage`), then look NAME up;
  "MODULE"        import MODULE, which must register exactly one entry (e.g. a task module).
"""
import importlib
from typing import Callable, Generic, TypeVar

T = TypeVar("T")


class Registry(Generic[T]):
    """Entries by name and registering module: two packages may both register a `tiny`
    model; a bare `tiny` is then ambiguous and must be named `MODULE:tiny`."""

    def __init__(self, kind: str):
        self.kind = kind
        self._entries: dict[str, dict[str, T]] = {}     # name -> {registering module: entry}

    def register(self, name: str, entry: T, module: str = "") -> T:
        self._entries.setdefault(name, {})[module] = entry   # a reload re-registers in place
        return entry

    def decorator(self, name: str) -> Callable[[T], T]:
        def wrap(entry):
            return self.register(name, entry, getattr(entry, "__module__", ""))
        return wrap

    def names(self) -> list[str]:
        """Every registered name; qualified as MODULE:NAME where several modules share it."""
        return sorted(name if len(by) == 1 else f"{m}:{name}"
                      for name, by in self._entries.items() for m in by)

    def get(self, spec: str) -> T:
        """The entry named by `spec` (see the module docstring for the three forms)."""
        if not spec:
            raise KeyError(f"no {self.kind} named: the config leaves it empty")
        module, sep, name = spec.partition(":")
        if not sep:
            by = self._entries.get(spec, {})
            if len(by) == 1:
                return next(iter(by.values()))
            if len(by) > 1:
                raise KeyError(f"{self.kind} {spec!r} is registered by {', '.join(sorted(by))}; name one as "
                               f"'MODULE:{spec}'")
            module, name = spec, ""
        elif any(_within(m, module) for m in self._entries.get(name, {})):
            return next(e for m, e in self._entries[name].items() if _within(m, module))
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as e:
            if e.name != module and not module.startswith(f"{e.name}."):
                raise                      # the module exists but imports something missing
            raise KeyError(f"unknown {self.kind} {spec!r}: no module {module!r} and no registered "
                           f"{self.kind} of that name (registered: {', '.join(self.names()) or 'none'}); "
                           f"name it as 'module:name', e.g. 'mypackage.task:my_task'") from None
        if name:
            own = [e for m, e in self._entries.get(name, {}).items() if _within(m, module)]
            if not own:
                raise KeyError(f"module {module!r} registers no {self.kind} {name!r}; "
                               f"registered: {', '.join(self.names())}")
            return own[0]
        own = [(n, e) for n, by in self._entries.items() for m, e in by.items() if _within(m, module)]
        if len(own) != 1:
            raise KeyError(f"module {module!r} registers {len(own)} {self.kind}s "
                           f"({', '.join(sorted(n for n, _ in own))}); name one as '{module}:NAME'")
        return own[0][1]


def _within(registering: str, module: str) -> bool:
    return registering == module or registering.startswith(module + ".")
