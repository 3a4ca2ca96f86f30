"""The layout's rules, checked: no import of the package hides inside a function (where a cycle
would), one JSON library, loggers named after their modules, errors in errors.py."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "flask_audit"
#: lazy imports kept on purpose (not cycles): the web process need not load Dramatiq or APScheduler
ALLOWED_LAZY = {
    ("cli/commands.py", "flask_audit.pipeline.clock"),
    ("cli/commands.py", "flask_audit.pipeline.tasks"),
    # SQLAlchemy is an extra: only an app that calls audit.track imports it
    ("extension.py", "flask_audit.integrations.sqlalchemy"),
    ("pipeline/tasks.py", "flask_audit.integrations.outbox"),
}


def modules():
    for path in sorted(PACKAGE.rglob("*.py")):
        yield path.relative_to(PACKAGE).as_posix(), ast.parse(path.read_text())


def test_no_package_import_hides_inside_a_function():
    hidden = []
    for name, tree in modules():
        for func in ast.walk(tree):
            if not isinstance(func, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            for node in ast.walk(func):
                module = getattr(node, "module", None) or ""
                if (
                    isinstance(node, ast.ImportFrom)
                    and module.startswith("flask_audit")
                    and (name, module) not in ALLOWED_LAZY
                ):
                    hidden.append(f"{name}: {module}")
                if isinstance(node, ast.ImportFrom) and node.level:
                    hidden.append(f"{name}: relative import")
    assert hidden == []


def test_one_json_library_and_loggers_named_after_modules():
    offenders = []
    for name, tree in modules():
        for node in ast.walk(tree):
            if isinstance(node, ast.Import) and any(alias.name == "json" for alias in node.names):
                offenders.append(f"{name}: imports json (use orjson)")
            if (
                isinstance(node, ast.Call)
                and getattr(node.func, "attr", None) == "getLogger"
                and node.args
                and isinstance(node.args[0], ast.Constant)
                and str(node.args[0].value).startswith("flask_audit")
            ):
                offenders.append(f"{name}: logger named {node.args[0].value!r}, not __name__")
    assert offenders == []


def test_every_exception_class_lives_in_errors():
    elsewhere = []
    for name, tree in modules():
        if name == "errors.py":
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef) and any(
                getattr(base, "id", getattr(base, "attr", "")).endswith(("Error", "Exception"))
                for base in node.bases
            ):
                elsewhere.append(f"{name}: {node.name}")
    assert elsewhere == []
