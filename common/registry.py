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
    def __init__(self, kind: str):
        self.kind = kind
        self._entries: dict[str, T] = {}
        self._modules: dict[str, str] = {}      # name -> module that registered it

    def register(self, name: str, entry: T, module: str = "") -> T:
        if name in self._entries and self._modules[name] != module:   # a reload may re-register
            raise ValueError(f"{self.kind} {name!r} is registered twice ({self._modules[name]} and {module})")
        self._entries[name] = entry
        self._modules[name] = module
        return entry

    def decorator(self, name: str) -> Callable[[T], T]:
        def wrap(entry):
            return self.register(name, entry, getattr(entry, "__module__", ""))
        return wrap

    def names(self) -> list[str]:
        return sorted(self._entries)

    def get(self, spec: str) -> T:
        """The entry named by `spec` (see the module docstring for the three forms)."""
        if not spec:
            raise KeyError(f"no {self.kind} named: the config leaves it empty")
        module, sep, name = spec.partition(":")
        if not sep:
            if spec in self._entries:
                return self._entries[spec]
            module, name = spec, ""
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as e:
            if e.name != module and not module.startswith(f"{e.name}."):
                raise                      # the module exists but imports something missing
            raise KeyError(f"unknown {self.kind} {spec!r}: no module {module!r} and no registered "
                           f"{self.kind} of that name (registered: {', '.join(self.names()) or 'none'}); "
                           f"name it as 'module:name', e.g. 'mypackage.task:my_task'") from None
        if name:
            owner = self._modules.get(name)
            if name not in self._entries or not (owner == module or owner.startswith(module + ".")):
                raise KeyError(f"module {module!r} registers no {self.kind} {name!r}; "
                               f"registered: {', '.join(self.names())}")
            return self._entries[name]
        own = [n for n, m in self._modules.items() if m == module or m.startswith(module + ".")]
        if len(own) != 1:
            raise KeyError(f"module {module!r} registers {len(own)} {self.kind}s ({', '.join(sorted(own))}); "
                           f"name one as '{module}:NAME'")
        return self._entries[own[0]]
