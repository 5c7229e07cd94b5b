"""Print the import cycles among flinq's own modules (exit 1 if any).

Every `import flinq...` / `from flinq... import` counts, at module level or
inside a function or `if TYPE_CHECKING:` block alike.

    python tools/import_cycles.py
"""

from __future__ import annotations

import ast
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent / "src"


def module_name(path: pathlib.Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports(path: pathlib.Path, modules: set[str]) -> set[str]:
    """The flinq modules path imports (a package's name stands for its __init__)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        for name in names:
            if name in modules:
                found.add(name)
    return found


def main() -> int:
    files = {module_name(p): p for p in (ROOT / "flinq").rglob("*.py")}
    modules = set(files)
    graph = {name: imports(path, modules) - {name} for name, path in files.items()}
    # A package's __init__ importing its own submodules is how packages work;
    # a submodule importing its package (or a sibling through it) is not exempt.
    for name in graph:
        graph[name] = {m for m in graph[name] if not m.startswith(name + ".")}
    cycles = []
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycles.append([*stack[stack.index(nxt) :], nxt])
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)
    for cycle in cycles:
        print(" -> ".join(cycle))
    print(f"{len(files)} modules, {sum(map(len, graph.values()))} imports, {len(cycles)} cycles")
    return 1 if cycles else 0


if __name__ == "__main__":
    sys.exit(main())
