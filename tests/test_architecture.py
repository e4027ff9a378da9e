"""The layers only look down: every import between rt's packages is one ARCHITECTURE.md allows.

The table "Who may import whom" in ARCHITECTURE.md is the rule; this test reads it and every
``import`` of every module under ``rt/`` (imports inside functions too), so the document and the
code cannot drift apart.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: Modules of rt that wrap the Cython extensions (the facades) count as the extensions.
NATIVE = {"rt_ext", "rt.ring", "rt.recv", "rt.merge", "rt.rawpack"}


def _rules() -> dict[str, set[str]]:
    text = (ROOT / "ARCHITECTURE.md").read_text()
    table = text.split("## Who may import whom", 1)[1]
    rules = {}
    for line in table.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 2 or cells[0] in ("package", "") or set(cells[0]) <= {"-"}:
            continue
        rules[cells[0]] = {name.strip() for name in cells[1].split(",") if name.strip()}
    return rules


def _package(module: str) -> str | None:
    """The architecture's name for a module: rt/<pkg>/… or rt/<pkg>.py; "native" for the
    extensions and their facades; None for the rt package itself (its version string)."""
    parts = module.split(".")
    if parts[0] in NATIVE or module in NATIVE:
        return "native"
    if parts[0] != "rt" or len(parts) == 1 or parts[1] == "__version__":
        return None
    return "native" if ".".join(parts[:2]) in NATIVE else parts[1]


def _imports(path: Path) -> list[tuple[int, str]]:
    module_parts = list(path.relative_to(ROOT).with_suffix("").parts)
    package = module_parts[:-1]
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                if node.module:
                    found.append((node.lineno, ".".join(base + [node.module])))
                else:
                    found += [(node.lineno, ".".join(base + [alias.name])) for alias in node.names]
            else:
                found.append((node.lineno, node.module or ""))
    return found


def _violations(rules: dict[str, set[str]]) -> list[str]:
    bad = []
    for path in sorted((ROOT / "rt").rglob("*.py")):
        source = _package(".".join(path.relative_to(ROOT).with_suffix("").parts))
        if source is None or source == "native":
            continue
        allowed = rules.get(source)
        for line, target in _imports(path):
            dest = _package(target)
            if dest is None or dest == source:
                continue
            if allowed is None or dest not in allowed:
                bad.append(f"{path.relative_to(ROOT)}:{line}: {source} imports {dest} ({target})")
    return bad


def test_every_package_imports_only_what_the_architecture_allows():
    rules = _rules()
    assert {"errors", "protocols", "decode", "feeds", "store", "analysis", "api", "cli"} <= set(rules)
    assert _violations(rules) == []


def test_the_check_catches_an_upward_import():
    # The rule table with one allowance taken away must show that import (the check can fail).
    rules = _rules()
    rules["analysis"] = rules["analysis"] - {"protocols"}
    assert any(re.search(r"analysis imports protocols", v) for v in _violations(rules))


#: Longest function allowed outside the simulator, lines (docstring included). The simulator's
#: lap solver is one state machine and is exempt.
LONGEST_FUNCTION_LINES = 80


def _long_functions(limit: int) -> list[str]:
    found = []
    for path in sorted((ROOT / "rt").rglob("*.py")):
        if path.is_relative_to(ROOT / "rt" / "sim"):
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = node.end_lineno - node.lineno + 1
                if lines >= limit:
                    found.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name}: {lines} lines")
    return found


def test_no_function_outside_the_simulator_is_80_lines_or_longer():
    assert _long_functions(LONGEST_FUNCTION_LINES) == []
    assert _long_functions(60)  # the check sees functions at all (some are over 60 lines)
