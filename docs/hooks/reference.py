"""MkDocs hook: the reference pages, generated from the code at every build.

Nothing in them is typed by hand, so they cannot drift from the code:

* ``reference/spec.md``: every key a spec may hold, read from the JSON Schema that
  :func:`mixerlab.spec_schema.spec_schema` generates from the pydantic models (``Spec``, its
  sub-models, and ``DataConfig`` / ``TrainConfig`` / ``ModelConfig`` for the ``dataset``,
  ``train`` and ``model`` sections: the owner of that mapping is ``spec_schema._SECTIONS``).
  Type, default and allowed values come from the schema; a description from the schema where
  the field has one (``Field(description=...)``), else from the comment beside the field in
  its class, which is where this code base documents its defaults.
* ``reference/cli.md``: every command and option, read from :func:`mixerlab.cli.build_parser`.

The manual also shows a few committed figures; they live in ``results/``, outside ``docs/``,
and are added to the site as they are (``REPO_FILES``), so a figure the manual names that is
missing fails the strict build like any broken link.

``mkdocs.yml`` names this file under ``hooks:``; ``tests/test_docs.py`` calls the two
generators directly.
"""

from __future__ import annotations

import argparse
import ast
import inspect
import io
import json
import re
import textwrap
import tokenize
import typing
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
# Committed figures the manual shows (paths relative to the repository, kept in the site).
REPO_FILES = ("results/answer/answer.png", "results/answer/accuracy_vs_macs.png",
              "results/quick/report/interaction.png")
SPEC_PAGE, CLI_PAGE = "reference/spec.md", "reference/cli.md"


# ---------------------------------------------------------------- comments of model fields

def field_comments(cls) -> dict[str, str]:
    """``{field: comment}`` for the fields ``cls`` (or a base class) declares: the comment
    lines right above a field, else the comment on its own line. Docstring-less fields in this
    code base are documented that way (``config.py``: "the comment beside each says why")."""
    out: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if klass.__module__.startswith(("pydantic", "builtins")):
            continue
        try:
            source = textwrap.dedent(inspect.getsource(klass))
        except (OSError, TypeError):
            continue
        out.update(_class_comments(source))
    return out


def _class_comments(source: str) -> dict[str, str]:
    lines = source.splitlines()
    comments = {tok.start[0]: tok.string.lstrip("#").strip()
                for tok in tokenize.generate_tokens(io.StringIO(source).readline)
                if tok.type == tokenize.COMMENT}
    cls = ast.parse(source).body[0]
    out = {}
    for node in cls.body:
        if not (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)):
            continue
        above, line = [], node.lineno - 1
        while line in comments and lines[line - 1].lstrip().startswith("#"):
            above.insert(0, comments[line])
            line -= 1
        beside = [comments[n] for n in range(node.lineno, node.end_lineno + 1) if n in comments]
        text = " ".join(above or beside)
        if text:
            out[node.target.id] = text
    return out


def _models(roots) -> dict[str, type]:
    """Every pydantic model reachable from ``roots`` through field annotations, by class name
    (the schema's ``$defs`` names them so)."""
    from pydantic import BaseModel

    found: dict[str, type] = {}
    todo = list(roots)
    while todo:
        cls = todo.pop()
        if cls.__name__ in found:
            continue
        found[cls.__name__] = cls
        for field in cls.model_fields.values():
            stack = [field.annotation]
            while stack:
                t = stack.pop()
                if isinstance(t, type) and issubclass(t, BaseModel):
                    todo.append(t)
                stack.extend(typing.get_args(t))
    return found


# ---------------------------------------------------------------- the spec reference

def _rst(text: str) -> str:
    """A docstring's reST roles and literals as Markdown code."""
    text = re.sub(r":\w+:`~?([^`]+)`", lambda m: f"`{m.group(1)}`", text)
    return text.replace("``", "`")


def _cell(text) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ").strip()


def _deref(s: dict, defs: dict) -> tuple[str | None, dict]:
    if "$ref" in s:
        name = s["$ref"].rsplit("/", 1)[-1]
        return name, defs[name]
    return None, s


def _type(s: dict, defs: dict) -> str:
    if "$ref" in s:
        return s["$ref"].rsplit("/", 1)[-1]
    for key in ("anyOf", "oneOf"):
        if key in s:
            return " or ".join(_type(m, defs) for m in s[key])
    t = s.get("type")
    if t == "array":
        return f"list of {_type(s.get('items', {}), defs)}" if s.get("items") else "list"
    if t == "object":
        return "mapping"
    return t or "any"


def _allowed(s: dict, defs: dict) -> str:
    parts = []
    if "enum" in s:
        parts.append(", ".join(f"`{v}`" for v in s["enum"]))
    if "const" in s:
        parts.append(f"`{s['const']}`")
    for key, op in (("exclusiveMinimum", ">"), ("minimum", ">="), ("exclusiveMaximum", "<"),
                    ("maximum", "<=")):
        if key in s:
            parts.append(f"{op} {s[key]}")
    if "minItems" in s:
        parts.append(f"at least {s['minItems']} item(s)")
    for key in ("anyOf", "oneOf"):
        parts += [a for a in (_allowed(m, defs) for m in s.get(key, [])) if a]
    if s.get("type") == "array" and s.get("items"):
        inner = "" if "$ref" in s["items"] else _allowed(s["items"], defs)
        if inner:
            parts.append(f"each {inner}")
    return "; ".join(parts)


def _default(key: str, s: dict, required: set) -> str:
    if key in required:
        return "required"
    if "default" in s:
        return f"`{json.dumps(s['default'])}`"
    return ""


def _nested(s: dict, defs: dict) -> tuple[str, dict] | None:
    """The object schema (with properties) a property holds, directly or in a list, and the
    suffix its keys take (``[]`` for a list's items)."""
    target = _deref(s, defs)[1]
    if target.get("properties"):
        return "", target
    if target.get("type") == "array" and target.get("items"):
        inner = _nested(target["items"], defs)
        return ("[]" + inner[0], inner[1]) if inner else None
    for key in ("anyOf", "oneOf"):
        for member in target.get(key, []):
            inner = _nested(member, defs)
            if inner:
                return inner
    return None


def _table(path: str, obj: dict, defs: dict, comments: dict) -> list[str]:
    required = set(obj.get("required", []))
    rows = ["| key | type | default | allowed | description |", "|---|---|---|---|---|"]
    for key, s in obj["properties"].items():
        described = s.get("description") or comments.get(key, "") or _model_summary(s, defs)
        full = f"{path}.{key}" if path else key
        rows.append(f"| `{full}` | {_cell(_type(s, defs))} | {_cell(_default(key, s, required))} "
                    f"| {_cell(_allowed(s, defs))} | {_cell(_rst(described))} |")
    return rows


def _model_summary(s: dict, defs: dict) -> str:
    """The first sentence of the docstring of the model a property holds, if any."""
    for member in [s, *_members(s)]:
        name = _ref_name(member)
        about = defs.get(name, {}).get("description", "") if name else ""
        if about:
            return " ".join(about.split()).split(". ")[0].rstrip(".") + "."
    return ""


def _walk(path: str, obj: dict, cls, defs: dict, models: dict, out: list[str], seen: set) -> None:
    comments = field_comments(cls) if cls is not None else {}
    out += _table(path, obj, defs, comments)
    for key, s in obj["properties"].items():
        nested = _nested(s, defs)
        if nested is None or nested[1] is obj:
            continue
        suffix, child = nested
        name = next((_ref_name(m) for m in [s, *_members(s)] if _ref_name(m)), None)
        child_path = f"{path}.{key}{suffix}" if path else f"{key}{suffix}"
        if child_path in seen:
            continue
        seen.add(child_path)
        child_cls = models.get(name) if name else _section_class(path, key)
        # a key that takes other forms too (seeds: a count, a list, or this mapping)
        forms = [m for m in _members(s) if m.get("type") != "null"] if "$ref" not in s else []
        note = " (the mapping form)" if len(forms) > 1 and not suffix else ""
        out += ["", f"### `{child_path}`{note}", ""]
        about = child.get("description") or s.get("description")
        if about:
            out += [_rst(" ".join(about.split())), ""]
        _walk(child_path, child, child_cls, defs, models, out, seen)


def _members(s: dict) -> list[dict]:
    found = []
    for key in ("anyOf", "oneOf"):
        found += s.get(key, [])
    if "items" in s:
        found.append(s["items"])
    return found + [m["items"] for m in found if "items" in m]


def _ref_name(s: dict) -> str | None:
    return s["$ref"].rsplit("/", 1)[-1] if "$ref" in s else None


def _section_class(path: str, key: str):
    from mixerlab import spec_schema

    return spec_schema._SECTIONS.get(key) if not path else None


def spec_reference() -> str:
    """The Markdown of ``reference/spec.md``: every key of the spec's JSON Schema."""
    from mixerlab import spec_schema

    schema = spec_schema.spec_schema()
    defs = schema.get("$defs", {})
    spec = spec_schema.Spec  # the model the schema was made from
    models = _models([spec, *spec_schema._SECTIONS.values()])
    out = [
        "# Spec keys",
        "",
        "Generated at build time from the spec's JSON Schema (`mixerlab.spec_schema.spec_schema()`,",
        "itself generated from the pydantic models `Spec`, `DataConfig`, `TrainConfig` and",
        "`ModelConfig`), so a key added to a model appears here without editing the manual.",
        "Descriptions are the field's own, or the comment beside it in its class.",
        "",
        "The same schema ships with the package: `mixerlab schema` prints its path, and",
        "`# yaml-language-server: $schema=<that path>` on a spec's first line lets an editor with a",
        "YAML language server complete and check the spec as you type (see",
        "[Writing a spec](../specs.md)). A spec's keys are checked again, with the fix named,",
        "by `mixerlab sweep SPEC --dry-run`.",
        "",
        "## Top level",
        "",
    ]
    _walk("", schema, spec, defs, models, out, set())
    return "\n".join(out) + "\n"


# ---------------------------------------------------------------- the CLI reference

def _subcommands(parser: argparse.ArgumentParser):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {a.dest: a.help for a in action._choices_actions}
            for name, sub in action.choices.items():
                yield name, helps.get(name, ""), sub


def _expand(action: argparse.Action, prog: str) -> str:
    """The option's help as ``--help`` prints it (argparse's ``%(default)s`` and friends)."""
    if not action.help:
        return ""
    params = {k: v for k, v in vars(action).items() if v is not argparse.SUPPRESS}
    params["prog"] = prog
    if params.get("choices") is not None:
        params["choices"] = ", ".join(map(str, params["choices"]))
    return action.help % params


def _value(action: argparse.Action) -> str:
    if action.nargs == 0:
        return "flag"
    if action.choices is not None and not action.metavar:
        return "one of " + ", ".join(f"`{c}`" for c in action.choices)
    name = action.metavar or (action.dest.upper() if action.option_strings else action.dest)
    return f"`{name}`" + (" ..." if action.nargs in ("+", "*") else "")


def _option_default(action: argparse.Action) -> str:
    d = action.default
    if d in (None, False, [], argparse.SUPPRESS) or action.nargs == 0:
        return ""
    return f"`{d}`"


def cli_reference() -> str:
    """The Markdown of ``reference/cli.md``: every command of ``mixerlab`` and its options."""
    from mixerlab.cli import build_parser

    parser = build_parser()
    out = ["# Command line", "",
           "Generated at build time from `mixerlab.cli.build_parser()`: each command's options as",
           "`mixerlab COMMAND --help` prints them. A mistake in a command line is one line on",
           "stderr and exit code 2.", ""]
    for name, helptext, sub in _subcommands(parser):
        out += [f"## `mixerlab {name}`", "", _cell(helptext), ""]
        if sub.description:
            out += [sub.description, ""]
        out += ["```text", sub.format_usage().strip(), "```", "",
                "| argument | value | default | description |", "|---|---|---|---|"]
        for action in sub._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            names = ", ".join(f"`{o}`" for o in action.option_strings) or f"`{action.dest}`"
            out.append(f"| {names} | {_cell(_value(action))} | {_cell(_option_default(action))} "
                       f"| {_cell(_expand(action, sub.prog))} |")
        out.append("")
    return "\n".join(out)


# ---------------------------------------------------------------- MkDocs events

def on_files(files, config):
    """Add the generated pages and the committed figures the manual shows."""
    from mkdocs.structure.files import File

    files.append(File.generated(config, SPEC_PAGE, content=spec_reference()))
    files.append(File.generated(config, CLI_PAGE, content=cli_reference()))
    for rel in REPO_FILES:
        files.append(File.generated(config, rel, abs_src_path=str(REPO / rel)))
    return files
