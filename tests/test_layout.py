"""The house rules of the code's layout (README "Layout"), checked from the source itself:
no import cycle among the project's modules, no import hidden in a function body without a
comment saying why, no module over 450 lines and no function over 60 lines without a
comment saying why. Migrations and the sandboxes under devtools/ are exempt from the sizes."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ("refundoffice", "refunds", "approvals")
CHECKED = (*SHIPPED, "bench", "tests")
MAX_MODULE_LINES = 450
MAX_FUNCTION_LINES = 60


def python_files(packages):
    for package in packages:
        for path in sorted((ROOT / package).rglob("*.py")):
            if "migrations" not in path.parts:
                yield path


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imported_modules(tree: ast.Module, name: str, is_package: bool):
    """(node, module) for every import in the tree, relative ones resolved; `from a import b`
    yields a.b as well as a (b may be a module or a name in a)."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node, alias.name
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = name.split(".") if is_package else name.split(".")[:-1]
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, *([base] if base else [])])
            yield node, base
            for alias in node.names:
                yield node, f"{base}.{alias.name}"


def import_graph(packages=SHIPPED) -> dict[str, set[str]]:
    files = {module_name(path): path for path in python_files(packages)}
    graph: dict[str, set[str]] = {name: set() for name in files}
    for name, path in files.items():
        tree = ast.parse(path.read_text(), filename=str(path))
        for _node, target in imported_modules(tree, name, path.name == "__init__.py"):
            if target in files and target != name:
                graph[name].add(target)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), or a module importing itself."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for successor in sorted(graph.get(node, ())):
            if successor not in index:
                visit(successor)
                low[node] = min(low[node], low[successor])
            elif successor in on_stack:
                low[node] = min(low[node], index[successor])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1 or node in graph.get(node, ()):
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def has_comment_near(lines: list[str], lineno: int, before: int = 2) -> bool:
    """A `#` comment on the line (1-based) or on one of the `before` lines above it."""
    for number in range(max(lineno - before, 1), lineno + 1):
        if "#" in lines[number - 1]:
            return True
    return False


def test_the_cycle_finder_finds_a_cycle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": {"e"}}
    assert cycles(graph) == [["a", "b", "c"], ["e"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycle_among_the_project_modules():
    graph = import_graph()
    assert "refunds.services.execution" in graph["refunds.tasks"]  # the graph is really read
    assert cycles(graph) == []


def test_services_never_import_tasks():
    graph = import_graph()
    offenders = sorted(name for name, targets in graph.items() if "refunds.tasks" in targets and name != "refunds.apps")
    assert offenders == []


def test_no_import_hides_in_a_function_body_without_a_comment():
    hidden = []
    for path in python_files(SHIPPED):
        source = path.read_text()
        lines = source.splitlines()
        for function in ast.walk(ast.parse(source)):
            if not isinstance(function, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            for node in ast.walk(function):
                if isinstance(node, (ast.Import, ast.ImportFrom)) and not has_comment_near(lines, node.lineno):
                    hidden.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert hidden == []


def test_no_module_over_450_lines():
    large = [
        f"{path.relative_to(ROOT)} ({lines})"
        for path in python_files(CHECKED)
        if (lines := path.read_text().count("\n")) > MAX_MODULE_LINES
    ]
    assert large == []


def test_no_function_over_60_lines_without_a_comment_saying_why():
    """A longer function carries a comment with the word "long" on its def line or just above."""
    long_ones = []
    for path in python_files(CHECKED):
        source = path.read_text()
        lines = source.splitlines()
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
                length = node.end_lineno - node.lineno + 1
                around = " ".join(lines[max(first - 3, 0) : node.lineno]).lower()
                if length > MAX_FUNCTION_LINES and not ("#" in around and "long" in around):
                    long_ones.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name} ({length} lines)")
    assert long_ones == []
