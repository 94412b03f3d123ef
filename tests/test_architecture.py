"""The package layout's import rules (docs/architecture.md), checked on the source's parsed imports:
the layers of ``fusionkit/``, and plugins (``plugins/``, ``docs/examples/``) importing only the public surface."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "fusionkit"
#: Where plugins live: the reference plugins, and the examples docs/plugins.md points to.
PLUGIN_ROOTS = (ROOT / "plugins", ROOT / "docs" / "examples")

#: Each layer and the layers it may import. The core is the top-level modules plus ``models``;
#: ``synthetic`` (generated brackets) sits beside the layers above ``data``: only ``training`` and the top
#: import it. ``api`` (the plugins' surface) and ``cli`` sit on top, and nothing in fusionkit imports them.
ALLOWED = {
    "core": {"core"},
    "data": {"core", "data"},
    "synthetic": {"core", "data", "synthetic"},
    "runs": {"core", "data", "runs"},
    "inference": {"core", "data", "runs", "inference"},
    "evaluation": {"core", "data", "runs", "inference", "evaluation"},
    "training": {"core", "data", "synthetic", "runs", "inference", "evaluation", "training"},
    "api": {"core", "data", "synthetic", "runs", "inference", "evaluation", "training", "api"},
    "cli": {"core", "data", "synthetic", "runs", "inference", "evaluation", "training", "cli"},
}
PLUGIN_PACKAGES = tuple(sorted(p.parent.name for p in (ROOT / "plugins").glob("*/__init__.py")))


def layer_of(module: str) -> str:
    """``fusionkit.training.engine`` -> ``training``; top-level modules and ``models`` -> ``core``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in ALLOWED else "core"


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path, root: Path) -> list[tuple[int, str]]:
    """Absolute names of every module ``path`` imports (relative imports resolved), with line numbers."""
    name = module_name(path, root)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            found.append((node.lineno, target))
            # ``from . import engine`` imports a module too
            found += [(node.lineno, f"{target}.{a.name}") for a in node.names if (root.parent / f"{target}.{a.name}".replace(".", "/")).with_suffix(".py").exists()]
    return found


def violations(root: Path = PACKAGE) -> list[str]:
    """Every import that breaks the documented direction, as 'file:line: message'."""
    problems = []
    for path in sorted(root.rglob("*.py")):
        source = module_name(path, root)
        layer = layer_of(source)
        for lineno, target in imported_modules(path, root):
            where = f"{path.relative_to(root.parent)}:{lineno}"
            if target.split(".")[0] in PLUGIN_PACKAGES:
                problems.append(f"{where}: {source} imports the plugin package {target}")
            if not target.startswith(root.name + ".") or target == source:
                continue
            target_layer = layer_of(target)
            if target_layer == "cli" and layer != "cli" and source != f"{root.name}.__main__":
                problems.append(f"{where}: {source} imports {target}; nothing imports the cli")
            elif target_layer not in ALLOWED[layer] and target_layer != "cli":
                problems.append(f"{where}: {source} ({layer}) imports {target} ({target_layer})")
    return problems


def plugin_violations(roots=PLUGIN_ROOTS) -> list[str]:
    """Every import of fusionkit by a plugin other than ``fusionkit``'s own names and ``fusionkit.api``."""
    import fusionkit
    import fusionkit.api

    surface = {"fusionkit": set(fusionkit.__all__) | {"api"}, "fusionkit.api": set(fusionkit.api.__all__)}
    problems = []
    for path in sorted(p for root in roots for p in root.rglob("*.py")):
        where = f"{path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}"
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                imported = [(alias.name, None) for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and not node.level:
                imported = [(node.module or "", alias.name) for alias in node.names]
            else:
                continue
            for module, name in imported:
                if module.split(".")[0] != "fusionkit":
                    continue
                if module not in surface:
                    problems.append(f"{where}:{node.lineno}: imports {module}; plugins import fusionkit and fusionkit.api only")
                elif name is not None and name not in surface[module]:
                    problems.append(f"{where}:{node.lineno}: imports {name} from {module}, which is not in its __all__")
    return problems


def test_imports_follow_the_documented_direction():
    assert violations() == []


def test_plugins_import_only_the_public_surface():
    assert PLUGIN_PACKAGES and plugin_violations() == []


@pytest.mark.parametrize(
    ("where", "line", "expected"),
    [
        ("fusionkit_kd/students.py", "from fusionkit.models import FusionNet\n", "imports fusionkit.models; plugins import"),
        ("fusionkit_timm/__init__.py", "import fusionkit.plugins\n", "imports fusionkit.plugins; plugins import"),
        ("fusionkit_classic/base.py", "from fusionkit import registry\n", "imports registry from fusionkit, which is not"),
        ("fusionkit_common/metrics.py", "from fusionkit.api import Registry\n", "imports Registry from fusionkit.api"),
    ],
)
def test_plugin_checker_catches_an_import_past_the_surface(tmp_path, where, line, expected):
    import shutil

    copy = tmp_path / "plugins"
    shutil.copytree(ROOT / "plugins", copy, ignore=shutil.ignore_patterns("__pycache__", "*.safetensors"))
    target = copy / where
    target.write_text(target.read_text() + line)
    found = plugin_violations([copy])
    assert len(found) == 1 and expected in found[0], found


def test_top_level_stays_small():
    """The plugin core (registry, contracts, hookspecs, plugins, errors), the package's ``__init__`` and ``__main__``,
    and three modules many layers share: ``files`` (safe writes), ``colour`` (colour conventions) and ``wholeimage``
    (pooling that attention blocks and tiling agree on). Ten at most: anything else belongs in a subpackage."""
    modules = sorted(p.name for p in PACKAGE.glob("*.py"))
    assert len(modules) <= 10, modules


def test_every_package_says_what_lives_there_and_what_it_may_import():
    for init in PACKAGE.glob("*/__init__.py"):
        doc = ast.get_docstring(ast.parse(init.read_text())) or ""
        assert "import" in doc.lower(), f"{init} docstring does not say what it may import"


@pytest.mark.parametrize(
    ("where", "line", "expected"),
    [
        ("registry.py", "from .training import engine\n", "fusionkit.registry (core) imports fusionkit.training"),
        ("data/io.py", "from ..inference.fuse import fuse_files\n", "(data) imports fusionkit.inference.fuse (inference)"),
        ("data/detect.py", "from ..synthetic import sample\n", "(data) imports fusionkit.synthetic (synthetic)"),
        ("synthetic/render.py", "from ..runs.checkpoint import paths\n", "(synthetic) imports fusionkit.runs.checkpoint (runs)"),
        ("evaluation/bench.py", "from ..synthetic import ensure_sample\n", "(evaluation) imports fusionkit.synthetic (synthetic)"),
        ("evaluation/bench.py", "from ..training.config import make_config\n", "(evaluation) imports fusionkit.training.config"),
        ("training/engine.py", "from ..cli.main import cli\n", "nothing imports the cli"),
        ("inference/fuse.py", "import fusionkit_kd\n", "imports the plugin package fusionkit_kd"),
        ("registry.py", "from .api import create\n", "fusionkit.registry (core) imports fusionkit.api (api)"),
        ("cli/main.py", "from ..api import create\n", "(cli) imports fusionkit.api (api)"),
    ],
)
def test_checker_catches_a_forbidden_import(tmp_path, where, line, expected):
    """A copy of the package with one forbidden import added fails the check, naming the import."""
    import shutil

    copy = tmp_path / "fusionkit"
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__"))
    target = copy / where
    target.write_text(target.read_text() + line)
    found = violations(copy)
    assert any(expected in problem for problem in found), found


def _docstrings(tree: ast.AST) -> set[int]:
    """ids of the string nodes that are docstrings (of the module, a class or a function)."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str):
                found.add(id(first.value))
    return found


def flag_literals(root: Path = PACKAGE) -> list[str]:
    """Every string literal outside ``cli/`` (docstrings aside) that spells a command-line flag such as ``--tile``."""
    flag = re.compile(r"(?<![\w-])--[A-Za-z]")
    problems = []
    for path in sorted(root.rglob("*.py")):
        if path.relative_to(root).parts[0] == "cli":
            continue
        tree = ast.parse(path.read_text(), str(path))
        docstrings = _docstrings(tree)
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings and flag.search(node.value):
                problems.append(f"{path.relative_to(root.parent)}:{node.lineno}: {node.value.strip()[:60]!r}")
    return problems


def test_only_the_command_line_names_flags():
    """Library messages name parameters with fusionkit.errors.param; the command line spells them as its flags."""
    assert flag_literals() == []


def test_the_flag_check_sees_a_flag_in_a_message(tmp_path):
    package = tmp_path / "fusionkit"
    (package / "cli").mkdir(parents=True)
    (package / "engine.py").write_text('"""Run with ``--tile``: a docstring may say so."""\nraise ValueError(f"--tile {1} is too small")\n')
    (package / "cli" / "main.py").write_text('FLAG = "--tile"\n')
    assert [line.split(": ", 1)[0] for line in flag_literals(package)] == ["fusionkit/engine.py:2"]
