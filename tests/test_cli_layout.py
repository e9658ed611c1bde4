"""The command line's layout: click lives in ``cxbridge/cli/`` only, every command has help, no string imports."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import click

import cxbridge
from cxbridge.cli import cli

PACKAGE = Path(cxbridge.__file__).parent
CLI_PACKAGE = PACKAGE / "cli"
TYPE_ONLY_CLICK = {"hookspecs.py", "plugins.py"}
"""They type the ``register_commands(cli: click.Group)`` hook, under TYPE_CHECKING only."""


@dataclass(frozen=True)
class Import:
    """One import statement: the modules it names, and where it stands."""

    modules: tuple[str, ...]
    level: int
    line: int
    in_function: bool
    type_checking: bool


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def imports(path: Path) -> Iterator[Import]:
    """Every import in a module: at module level, in functions and classes, under ``if TYPE_CHECKING``."""

    def walk(node: ast.AST, in_function: bool, type_checking: bool) -> Iterator[Import]:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.Import):
                names = tuple(alias.name for alias in child.names)
                yield Import(names, 0, child.lineno, in_function, type_checking)
            elif isinstance(child, ast.ImportFrom):
                yield Import((child.module or "",), child.level, child.lineno, in_function, type_checking)
            elif isinstance(child, ast.If) and _is_type_checking(child.test):
                for stmt in child.body:
                    yield from walk(ast.Module(body=[stmt], type_ignores=[]), in_function, True)
                for stmt in child.orelse:
                    yield from walk(ast.Module(body=[stmt], type_ignores=[]), in_function, type_checking)
            else:
                nested = in_function or isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda)
                yield from walk(child, nested, type_checking)

    yield from walk(ast.parse(path.read_text(encoding="utf-8"), str(path)), False, False)


def imports_click(imp: Import) -> bool:
    return imp.level == 0 and any(name == "click" or name.startswith("click.") for name in imp.modules)


def modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def all_commands(group: click.Group, path: tuple[str, ...] = ()) -> Iterator[tuple[str, click.Command]]:
    for name, command in sorted(group.commands.items()):
        yield " ".join((*path, name)), command
        if isinstance(command, click.Group):
            yield from all_commands(command, (*path, name))


def test_the_import_walker_sees_every_kind_of_import(tmp_path: Path) -> None:
    """Module level, function level and TYPE_CHECKING imports are all found, each marked as such."""
    sample = tmp_path / "sample.py"
    sample.write_text(
        "import click\n"
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from click import Group\n"
        "def f():\n    import click.testing\n    from .. import cli\n"
        "class C:\n    def m(self):\n        from click import echo\n",
        encoding="utf-8",
    )
    found = [(i.modules, i.level, i.in_function, i.type_checking) for i in imports(sample)]
    assert found == [
        (("click",), 0, False, False),
        (("typing",), 0, False, False),
        (("click",), 0, False, True),
        (("click.testing",), 0, True, False),
        (("",), 2, True, False),
        (("click",), 0, True, False),
    ]


def test_only_the_cli_package_imports_click() -> None:
    """Outside ``cxbridge/cli/`` click is imported nowhere, but for typing the register_commands hook."""
    outside: list[str] = []
    for path in modules():
        if path.is_relative_to(CLI_PACKAGE):
            continue
        for imp in imports(path):
            if not imports_click(imp):
                continue
            allowed = path.parent == PACKAGE and path.name in TYPE_ONLY_CLICK and imp.type_checking
            if not allowed:
                outside.append(f"{path.relative_to(PACKAGE.parent)}:{imp.line}")
    assert outside == []
    assert any(imports_click(imp) for imp in imports(CLI_PACKAGE / "group.py"))


def test_nothing_outside_the_cli_package_imports_it() -> None:
    """The CLI sits on top: a module below it that imported it would be an import cycle waiting to happen."""
    found: list[str] = []
    for path in modules():
        if path.is_relative_to(CLI_PACKAGE) or path.name == "__main__.py":
            continue
        package = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts[:-1])
        for imp in imports(path):
            for name in imp.modules:
                if imp.level:
                    base = package.rsplit(".", imp.level - 1)[0] if imp.level > 1 else package
                    name = f"{base}.{name}" if name else base
                if name == "cxbridge.cli" or name.startswith("cxbridge.cli."):
                    found.append(f"{path.relative_to(PACKAGE.parent)}:{imp.line}")
    assert found == []


def test_the_cli_package_imports_cxbridge_at_module_level_only() -> None:
    """Commands are registered by ordinary imports: no function-local import of a cxbridge module."""
    local: list[str] = []
    for path in sorted(CLI_PACKAGE.rglob("*.py")):
        for imp in imports(path):
            ours = imp.level > 0 or any(n == "cxbridge" or n.startswith("cxbridge.") for n in imp.modules)
            if ours and imp.in_function:
                local.append(f"{path.name}:{imp.line}")
    assert local == []


def test_no_module_in_the_cli_package_uses_importlib() -> None:
    """No commands loaded from strings: neither importlib nor ``__import__``."""
    found: list[str] = []
    for path in sorted(CLI_PACKAGE.rglob("*.py")):
        for imp in imports(path):
            if any(n == "importlib" or n.startswith("importlib.") for n in imp.modules) and imp.level == 0:
                found.append(f"{path.name}:{imp.line}")
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            name = node.id if isinstance(node, ast.Name) else node.attr if isinstance(node, ast.Attribute) else ""
            if name in {"importlib", "__import__", "import_module"}:
                found.append(f"{path.name}:{node.lineno}")
    assert found == []


def test_every_command_has_help_text() -> None:
    """Every core command and subcommand says what it does (its first line is what ``--help`` lists)."""
    commands = dict(all_commands(cli))
    assert {"init", "doctor", "plugins list", "sync", "serve", "sandbox serve", "dead-letters replay"} <= set(commands)
    missing = [name for name, command in commands.items() if not (command.help or "").strip()]
    assert missing == []
