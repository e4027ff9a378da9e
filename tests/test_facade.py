"""The facade rule: ``rt`` reaches the compiled ``rt_ext`` only through its facade modules.

The extension's names, signatures and units are then documented and typed in one place each, and
the extension can change inside without the rest of ``rt`` noticing. The scan reads every module
of ``rt`` (imports anywhere, including inside functions, and ``importlib.import_module`` /
``__import__`` with a literal name), so a new direct import fails here.
"""

from __future__ import annotations

import ast
import importlib
import types
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
RT = ROOT / "rt"

#: facade module → the extension module it is the door to.
FACADES = {
    "rt.ring": "rt_ext.ring",
    "rt.recv": "rt_ext.recv",
    "rt.merge": "rt_ext.merge",
    "rt.rawpack": "rt_ext.rawpack",
}
#: rt.decode is more than a facade (it builds copy plans) but is the door to rt_ext.decode.
DOORS = {*FACADES, "rt.decode"}


def _is_ext(name: str | None) -> bool:
    return name is not None and (name == "rt_ext" or name.startswith("rt_ext."))


def ext_imports(source: str, filename: str = "<source>") -> list[tuple[int, str]]:
    """``(line, module)`` of every import of ``rt_ext`` in ``source``."""
    found = []
    for node in ast.walk(ast.parse(source, filename)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names if _is_ext(a.name)]
        elif isinstance(node, ast.ImportFrom):
            # A relative import (level > 0) stays inside rt; rt_ext is not a subpackage of it.
            if node.level == 0 and _is_ext(node.module):
                found.append((node.lineno, node.module))
        elif isinstance(node, ast.Call) and node.args:
            func = node.func
            fname = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else None
            arg = node.args[0]
            if (fname in ("import_module", "__import__") and isinstance(arg, ast.Constant)
                    and isinstance(arg.value, str) and _is_ext(arg.value)):
                found.append((node.lineno, arg.value))
    return found


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def test_only_the_facades_import_rt_ext():
    offenders = []
    for path in sorted(RT.rglob("*.py")):
        name = _module_name(path)
        if name in DOORS:
            continue
        offenders += [f"{path.relative_to(ROOT)}:{line}: imports {mod}"
                      for line, mod in ext_imports(path.read_text(encoding="utf-8"), str(path))]
    assert not offenders, ("import these through a facade module (" + ", ".join(sorted(DOORS)) + "):\n"
                           + "\n".join(offenders))


@pytest.mark.parametrize("source", [
    "import rt_ext.ring",
    "import rt_ext",
    "from rt_ext import ring",
    "from rt_ext.recv import ReceiverLoop as Loop",
    "def f():\n    from rt_ext.merge import merge_timelines\n",
    "import importlib\nimportlib.import_module('rt_ext.rawpack')",
    "__import__('rt_ext.decode')",
])
def test_the_scan_sees_every_kind_of_import(source):
    assert ext_imports(source)


@pytest.mark.parametrize("source", [
    "from ..ring import PacketRing",
    "from rt.ring import PacketRing",
    "import rt_extra",
    "x = 'rt_ext.ring'",
])
def test_the_scan_leaves_other_imports_alone(source):
    assert not ext_imports(source)


@pytest.mark.parametrize("facade", sorted(FACADES))
def test_each_facade_exports_all_of_its_extension(facade):
    # A public name added to the extension must reach rt through its facade, or nobody could use it.
    ext = importlib.import_module(FACADES[facade])
    public = {n for n, v in vars(ext).items() if not n.startswith("_") and not isinstance(v, types.ModuleType)}
    mod = importlib.import_module(facade)
    assert set(mod.__all__) == public
    for name in public:
        assert getattr(mod, name) is getattr(ext, name)
    assert "rt_ext" in (mod.__doc__ or "") and "only door" in (mod.__doc__ or "")
