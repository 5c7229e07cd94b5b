"""Print uses of another file's private names in flinq's Python modules
(exit 1 if any).

A private name starts with one underscore. A module may use its own (names
it defines, assigns or lists in __slots__) on any object, and any on self
and cls; anything else reached as `obj._name`, `super()._name`,
`getattr(obj, "_name")` or imported as `from module import _name` belongs
to another file or project. Private
modules of flinq itself (`from flinq import _core`) are files of this
package, not names inside one, and may be imported.

    python tools/private_names.py
"""

from __future__ import annotations

import ast
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent / "src"

#: Judged exceptions, (file, name) -> why no public name does the job.
ALLOWED = {
    ("flinq/lmdbstore/lifecycle.py", "_register_atexit"): (
        "threading's hook that runs before non-daemon threads are joined at exit, so "
        "closing stores wakes threads blocked in them; the stdlib has no public one "
        "(atexit runs after the join), and atexit is the fallback where it is missing"
    ),
}


#: Public despite the underscore: a namedtuple's documented methods (the
#: underscore only keeps them apart from field names).
NAMEDTUPLE_API = {"_replace", "_asdict", "_fields", "_make", "_field_defaults"}


def is_private(name: str) -> bool:
    if name in NAMEDTUPLE_API:
        return False
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def slot_names(tree: ast.AST) -> set[str]:
    """The entries of every __slots__ the module assigns."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "__slots__" for t in node.targets
        ):
            for item in ast.walk(node.value):
                if isinstance(item, ast.Constant) and isinstance(item.value, str):
                    names.add(item.value)
    return names


def own_attributes(tree: ast.AST) -> set[str]:
    """Names the module's own objects may have as attributes: what its
    class bodies define or assign, what it assigns to or deletes from an
    attribute, its __slots__ entries."""
    names = slot_names(tree)
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef):
            for statement in node.body:
                if isinstance(statement, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                    names.add(statement.name)
                for target in ast.walk(statement):
                    if isinstance(target, ast.Name) and isinstance(target.ctx, ast.Store):
                        names.add(target.id)
        elif isinstance(node, ast.Attribute) and isinstance(node.ctx, (ast.Store, ast.Del)):
            names.add(node.attr)
    return names


def own_names(tree: ast.AST) -> set[str]:
    """own_attributes plus the module's other names: functions, classes,
    variables and import aliases (a module's functions can be reached as
    attributes of the module)."""
    names = own_attributes(tree)
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
        elif isinstance(node, ast.alias):
            names.add(node.asname or node.name.split(".")[0])
    return names


def is_flinq_module(module: str) -> bool:
    """True if module (dotted) is a file or package of flinq."""
    path = ROOT.joinpath(*module.split("."))
    return path.is_dir() or any(path.with_suffix(s).exists() for s in (".py", ".pyx"))


def findings(path: pathlib.Path) -> list[str]:
    tree = ast.parse(path.read_text(), str(path))
    own = own_names(tree)
    attributes = own_attributes(tree)
    where = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and is_private(node.attr):
            value = node.value
            if isinstance(value, ast.Name) and value.id in ("self", "cls"):
                continue
            if node.attr in own:
                continue
            found.append(f"{where}:{node.lineno}: .{node.attr}")
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id in ("getattr", "hasattr", "setattr")
            and len(node.args) >= 2
            and isinstance(node.args[1], ast.Constant)
            and isinstance(node.args[1].value, str)
            and is_private(node.args[1].value)
            and node.args[1].value not in attributes
        ):
            found.append(f"{where}:{node.lineno}: {node.func.id}(..., {node.args[1].value!r})")
        elif isinstance(node, ast.ImportFrom) and node.module:
            for alias in node.names:
                if is_private(alias.name) and not is_flinq_module(f"{node.module}.{alias.name}"):
                    found.append(f"{where}:{node.lineno}: from {node.module} import {alias.name}")
    return found


def main() -> int:
    found = [f for path in sorted(ROOT.rglob("*.py")) for f in findings(path)]
    found = [f for f in found if not any(f.startswith(p) and n in f for p, n in ALLOWED)]
    for line in found:
        print(line)
    if not found:
        print("no use of another file's private names")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
