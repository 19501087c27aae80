"""Layout guards: small folders, names without their folder's prefix, one-way imports, no cycles."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("bot", "commands")
MAX_MODULES = 12
# What code outside commands/ may import from a family: its package or a module it exports for that.
PUBLIC = {
    "commands",
    "commands.queues",
    "commands.backup",
    "commands.search",
    "commands.health",
    "commands.incidents",
    "commands.backup.schedule",
    "commands.db.reserve",
    "commands.meta",
}


def _modules() -> Iterator[tuple[str, Path]]:
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            yield name, path


def _top_level_imports(name: str, path: Path, known: set[str]) -> set[str]:
    """Modules imported when this one loads: not inside functions, not under TYPE_CHECKING."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in _load_time(tree.body):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{anchor}.{base}" if base else anchor
            names = {f"{base}.{a.name}" for a in node.names}
            submodules = {n for n in names if n in known}
            found |= submodules if submodules == names else submodules | {base}
    return found


def _load_time(body: list[ast.stmt]) -> Iterator[ast.stmt]:
    for node in body:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            yield from _load_time(node.orelse)
        elif isinstance(node, ast.If | ast.Try | ast.With):
            for field in ("body", "orelse", "finalbody", "handlers"):
                for child in getattr(node, field, []):
                    yield from _load_time(getattr(child, "body", [child]))
        else:
            yield node


def _graph() -> dict[str, set[str]]:
    modules = dict(_modules())
    return {
        name: {
            m for m in _top_level_imports(name, path, set(modules)) if m in modules and m != name
        }
        for name, path in modules.items()
    }


def test_no_folder_holds_more_than_twelve_modules():
    """A folder that grows past about twelve modules is two concepts; split it."""
    crowded = {}
    for package in PACKAGES:
        for folder in [ROOT / package, *(ROOT / package).rglob("*/")]:
            count = len([p for p in folder.glob("*.py") if p.name != "__init__.py"])
            if count > MAX_MODULES and "__pycache__" not in folder.parts:
                crowded[str(folder.relative_to(ROOT))] = count
    assert not crowded, f"folders over {MAX_MODULES} modules: {crowded}"


def test_no_module_carries_its_folders_name_as_a_prefix():
    """`bot/alerts/store.py`, never `bot/alerts/alert_store.py`: the folder already says it."""
    prefixed = []
    for _, path in _modules():
        folder = path.parent.name.rstrip("s")
        if path.stem != "__init__" and path.stem.startswith(f"{folder}_"):
            prefixed.append(str(path.relative_to(ROOT)))
    assert not prefixed


def test_code_outside_commands_reaches_a_family_only_through_its_public_module():
    """bot/ calls command families through the registry or the few modules they export for it."""
    reached = []
    for name, path in _modules():
        if name.startswith("commands"):
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("commands"):
                if node.module not in PUBLIC:
                    reached.append(f"{name} → {node.module}")
            elif isinstance(node, ast.Import):
                reached += [f"{name} → {a.name}" for a in node.names if _private(a.name)]
    assert not reached


def _private(module: str) -> bool:
    return module.startswith("commands") and module not in PUBLIC


def test_there_are_no_import_cycles():
    """Modules import each other one way only, at load time (imports inside functions aside)."""
    graph = _graph()
    cycles: list[list[str]] = []
    state: dict[str, int] = {}

    def visit(node: str, trail: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycles.append(trail[trail.index(nxt) :] + [nxt])
            elif nxt not in state:
                visit(nxt, [*trail, nxt])
        state[node] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    assert not cycles, "import cycles: " + "; ".join(" → ".join(c) for c in cycles[:5])
