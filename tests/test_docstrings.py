"""Reference: every public name has a docstring.

Walks ``bayesal.__all__`` and the ``__all__`` of every submodule: each module, each exported
function and class, and each public method and property of an exported class (a method may
inherit its docstring from the base class it overrides) must be documented; every name in an
``__all__`` must exist.
"""

import importlib
import inspect
import pkgutil

import pytest

import bayesal

MODULES = ["bayesal"] + sorted(m.name for m in pkgutil.walk_packages(bayesal.__path__, "bayesal.")
                               if not m.name.endswith("__main__"))


def _public_members(cls):
    for name, member in vars(cls).items():
        if name.startswith("_"):
            continue
        if isinstance(member, (staticmethod, classmethod)):
            member = member.__func__
        if isinstance(member, property):
            member = member.fget
        if inspect.isfunction(member):
            yield name, member


def _undocumented(module_name):
    module = importlib.import_module(module_name)
    missing = []
    if not (module.__doc__ or "").strip():
        missing.append(f"{module_name} (module)")
    for name in getattr(module, "__all__", []):
        if not hasattr(module, name):
            missing.append(f"{module_name}.{name} (listed in __all__, not defined)")
            continue
        obj = getattr(module, name)
        if inspect.ismodule(obj):
            if not (obj.__doc__ or "").strip():
                missing.append(f"{module_name}.{name} (module)")
        elif inspect.isclass(obj):
            if not (obj.__dict__.get("__doc__") or "").strip():
                missing.append(f"{module_name}.{name}")
            for method, fn in _public_members(obj):
                # inspect.getdoc finds the docstring of the base-class method this one overrides
                if not (inspect.getdoc(getattr(obj, method, fn)) or inspect.getdoc(fn) or "").strip():
                    missing.append(f"{module_name}.{name}.{method}")
        elif callable(obj) and not (inspect.getdoc(obj) or "").strip():
            missing.append(f"{module_name}.{name}")
    return missing


@pytest.mark.parametrize("module_name", MODULES)
def test_public_names_have_docstrings(module_name):
    missing = _undocumented(module_name)
    assert not missing, "undocumented public names: " + ", ".join(missing)


def test_every_public_module_declares_all():
    without = [m for m in MODULES if m.rsplit(".", 1)[-1][0] != "_"
               and not hasattr(importlib.import_module(m), "__all__")]
    assert not without, f"modules without __all__: {without}"


def test_top_level_all_is_importable_and_documented():
    assert len(bayesal.__all__) == len(set(bayesal.__all__))
    for name in bayesal.__all__:
        assert hasattr(bayesal, name), name


def test_the_check_catches_a_missing_docstring(monkeypatch):
    import types

    fake = types.ModuleType("bayesal._fake", "A module.")

    class Documented:
        """Has a docstring."""

        def method(self):
            return 1

    fake.Documented = Documented
    fake.__all__ = ["Documented", "ghost"]
    monkeypatch.setitem(__import__("sys").modules, "bayesal._fake", fake)
    assert _undocumented("bayesal._fake") == ["bayesal._fake.Documented.method",
                                               "bayesal._fake.ghost (listed in __all__, not defined)"]
