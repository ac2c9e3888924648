"""The README and the manual cannot drift from the code.

* the manual (``mkdocs.yml``, ``docs/``) builds with ``--strict``, and a broken link fails it;
* its reference is generated: a key added to a config model is in the spec reference, an
  option added to a command in the CLI reference, without editing a page;
* README.md stays short and keeps ``make demo``, ``make test`` and the answer's block;
* every spec the README or the manual shows is a file that ``mixerlab sweep FILE --dry-run``
  accepts (the manual includes the file itself with ``--8<--``; the README's copy must equal
  its file); a YAML fragment that is not a whole spec is checked against the JSON Schema;
* every ``mixerlab ...`` command line in README.md, results/README.md and docs/ parses with
  ``mixerlab.cli.build_parser()``, so a renamed command or option fails here.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import io
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from pydantic import Field

from mixerlab.config import TrainConfig
from mixerlab.spec import Spec

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
README = ROOT / "README.md"
TEXTS = [README, ROOT / "results" / "README.md", *sorted(DOCS.glob("**/*.md"))]
SNIPPET = re.compile(r'^\s*--8<--\s+"([^":]+)(?::[^"]*)?"\s*$')
FENCE = re.compile(r"^```(\w*)[^\n]*\n(.*?)^```\s*$", re.M | re.S)
MAX_README_LINES = 250


def _hook():
    """docs/hooks/reference.py, the MkDocs hook that writes the reference pages."""
    spec = importlib.util.spec_from_file_location("docs_reference_hook", DOCS / "hooks" / "reference.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _rel(path: Path) -> str:
    return str(path.relative_to(ROOT))


# ---------------------------------------------------------------- the build

def _mkdocs(config: Path, site: Path) -> subprocess.CompletedProcess:
    exe = Path(sys.executable).with_name("mkdocs")
    return subprocess.run([str(exe), "build", "--strict", "-f", str(config), "--site-dir", str(site)],
                          cwd=ROOT, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})


def test_manual_builds_strictly(tmp_path):
    run = _mkdocs(ROOT / "mkdocs.yml", tmp_path / "site")
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-4000:]
    for page in ("reference/spec", "reference/cli", "reference/api", "studies"):
        assert (tmp_path / "site" / page / "index.html").is_file(), page
    api = (tmp_path / "site" / "reference" / "api" / "index.html").read_text()
    assert "decide_claims" in api  # mkdocstrings rendered the docstrings
    studies = (tmp_path / "site" / "studies" / "index.html").read_text()
    assert "patches_answer: begin" in studies  # the README's answer block, included


def test_a_broken_link_fails_the_strict_build(tmp_path):
    """The same configuration, reading a copy of the pages with one link to nowhere."""
    pages = tmp_path / "docs"
    shutil.copytree(DOCS, pages)
    with open(pages / "index.md", "a") as f:
        f.write("\nSee [a page that does not exist](nowhere.md).\n")
    config = (ROOT / "mkdocs.yml").read_text()
    for old, new in (("docs_dir: docs", f"docs_dir: {pages}"),
                     ("- docs/hooks/reference.py", f"- {DOCS / 'hooks' / 'reference.py'}"),
                     ("!relative $config_dir", str(ROOT)), ("paths: [src]", f"paths: [{ROOT / 'src'}]")):
        assert old in config, f"mkdocs.yml no longer has {old!r}: update this test"
        config = config.replace(old, new)
    (tmp_path / "mkdocs.yml").write_text(config)
    run = _mkdocs(tmp_path / "mkdocs.yml", tmp_path / "site")
    assert run.returncode != 0
    assert "nowhere.md" in run.stdout + run.stderr


# ---------------------------------------------------------------- the generated reference

class _Extended(TrainConfig):
    # A knob only this test has: this comment is its description in the reference.
    frobnicate_every: int = 3
    described_knob: float = Field(0.5, gt=0, description="a knob described by its Field")


class _ExtendedSpec(Spec):
    notify: str | None = None  # where to send a message when the study ends (this test's key)


def _row(page: str, key: str) -> str:
    rows = [line for line in page.splitlines() if line.startswith(f"| `{key}` |")]
    assert len(rows) == 1, f"{key} is not one row of the spec reference"
    return rows[0]


def test_a_key_added_to_a_config_model_appears_in_the_spec_reference(monkeypatch):
    from mixerlab import spec_schema

    ref = _hook()
    assert "frobnicate_every" not in ref.spec_reference()
    monkeypatch.setitem(spec_schema._SECTIONS, "train", _Extended)
    page = ref.spec_reference()
    row = _row(page, "train.frobnicate_every")
    assert "integer" in row and "`3`" in row and "A knob only this test has" in row
    row = _row(page, "train.described_knob")
    assert "number" in row and "> 0" in row and "a knob described by its Field" in row
    assert "`grid.frobnicate_every`" not in page  # a new field is not a grid factor by itself


def test_a_key_added_to_the_spec_appears_in_the_spec_reference(monkeypatch):
    from mixerlab import spec_schema

    monkeypatch.setattr(spec_schema, "Spec", _ExtendedSpec)
    row = _row(_hook().spec_reference(), "notify")
    assert "string or null" in row and "where to send a message" in row


def test_every_schema_key_and_every_cli_option_is_in_the_reference():
    from mixerlab.cli import build_parser
    from mixerlab.spec_schema import spec_schema

    ref = _hook()
    spec_page = ref.spec_reference()
    schema = spec_schema()
    for key in schema["properties"]:
        _row(spec_page, key)
    for section in ("dataset", "train", "model"):
        for key in schema["properties"][section]["properties"]:
            _row(spec_page, f"{section}.{key}")
    cli_page = ref.cli_reference()
    for name, _, sub in ref._subcommands(build_parser()):
        assert f"## `mixerlab {name}`" in cli_page
        for action in sub._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            for option in action.option_strings:
                assert f"`{option}`" in cli_page, f"mixerlab {name} {option}"


def test_every_spec_key_in_the_reference_has_a_description():
    """A key's row says what it is for: a comment beside the field (or Field(description=...)).
    A field added without one shows an empty cell here and fails."""
    rows = [line for line in _hook().spec_reference().splitlines() if line.startswith("| `")]
    assert len(rows) > 100
    empty = [line.split("|")[1].strip() for line in rows if not line.rstrip().split("|")[-2].strip()]
    assert not empty, f"spec keys without a description (add a comment above the field): {empty}"


def test_an_option_added_to_a_command_appears_in_the_cli_reference(monkeypatch):
    import mixerlab.cli

    real = mixerlab.cli.build_parser

    def with_option():
        parser = real()
        for name, _, sub in _hook()._subcommands(parser):
            if name == "sweep":
                sub.add_argument("--frobnicate", metavar="N", help="added by the test")
        return parser

    monkeypatch.setattr(mixerlab.cli, "build_parser", with_option)
    assert "| `--frobnicate` | `N` |  | added by the test |" in _hook().cli_reference()


# ---------------------------------------------------------------- the README

def test_readme_is_short_and_keeps_the_two_commands_and_the_answer():
    text = README.read_text()
    assert len(text.splitlines()) <= MAX_README_LINES
    assert "make demo" in text and "make test" in text
    begin = "<!-- patches_answer: begin (written by analysis/patches_answer.py --readme) -->"
    assert text.count(begin) == 1 and text.count("<!-- patches_answer: end -->") == 1
    assert "results/answer/answer.png" in text


def test_readme_links_point_at_files():
    for path in (README, ROOT / "results" / "README.md"):
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", path.read_text()):
            if "://" not in target:
                assert (path.parent / target).exists(), f"{_rel(path)}: link to {target}"


# ---------------------------------------------------------------- specs shown

def _yaml_blocks(path: Path):
    return [body for lang, body in FENCE.findall(path.read_text()) if lang == "yaml"]


def _is_spec(data) -> bool:
    return isinstance(data, dict) and {"name", "question"} <= set(data)


def shown_specs() -> dict[str, list[str]]:
    """{spec file: where it is shown}: the manual's included files and the README's copies."""
    found: dict[str, list[str]] = {}
    for path in TEXTS:
        for body in _yaml_blocks(path):
            included = [m.group(1) for m in map(SNIPPET.match, body.splitlines()) if m]
            if included:
                for rel in included:
                    found.setdefault(rel, []).append(_rel(path))
                continue
            if not _is_spec(yaml.safe_load(body)):
                continue  # a fragment: test_yaml_fragments_match_the_schema
            named = re.findall(r"\b(ablations/\S+\.ya?ml)", "\n".join(body.splitlines()[:3]))
            assert named, f"{_rel(path)}: a spec shown inline must name its file in its first lines"
            found.setdefault(named[0], []).append(_rel(path))
    return found


SHOWN = shown_specs()


def test_specs_are_shown_from_their_files():
    assert "ablations/examples/readme_claim.yaml" in SHOWN
    for path in TEXTS:
        for body in _yaml_blocks(path):
            if any(SNIPPET.match(line) for line in body.splitlines()):
                continue
            if _is_spec(yaml.safe_load(body)):
                assert path == README, (f"{_rel(path)}: the manual shows a spec inline; put it in a "
                                        'file and include it: --8<-- "ablations/examples/NAME.yaml"')
                named = re.findall(r"\b(ablations/\S+\.ya?ml)", body)[0]
                assert (ROOT / named).read_text() == body, f"README.md's copy of {named} differs from the file"


def test_yaml_fragments_match_the_schema():
    """A fragment (some keys of a spec) is checked against the spec's JSON Schema."""
    import jsonschema

    from mixerlab.spec_schema import spec_schema

    schema = spec_schema()
    checked = 0
    for path in TEXTS:
        for body in _yaml_blocks(path):
            if any(SNIPPET.match(line) for line in body.splitlines()):
                continue
            data = yaml.safe_load(body)
            if _is_spec(data) or not isinstance(data, dict):
                continue
            jsonschema.validate({"name": "fragment", "question": "?", **data}, schema)
            checked += 1
    assert checked >= 1


@pytest.fixture
def untimed_dry_run(monkeypatch):
    """``--dry-run`` without timing each configuration on this CPU: the spec is still loaded,
    validated, expanded and matched as the command does; the timing (up to a minute a spec
    here) says nothing about whether the spec is right."""
    import mixerlab.sweep.dry_run as dry

    monkeypatch.setattr(dry, "estimate", lambda *args, **kw: (None, None, None, None))


@pytest.mark.parametrize("rel", sorted(SHOWN))
def test_every_spec_shown_dry_runs(rel, tmp_path, untimed_dry_run, capsys):
    from mixerlab.cli import main

    assert (ROOT / rel).is_file(), f"{rel} (shown in {SHOWN[rel]}) does not exist"
    rc = main(["sweep", str(ROOT / rel), "--dry-run", "--results", str(tmp_path)])
    out = capsys.readouterr()
    assert rc == 0, f"{rel} (shown in {SHOWN[rel]}): {out.err}"
    assert "trials" in out.out


def test_a_bad_spec_fails_the_dry_run(tmp_path, untimed_dry_run, capsys):
    from mixerlab.cli import main

    bad = tmp_path / "bad.yaml"
    text = (ROOT / "ablations/examples/readme_claim.yaml").read_text()
    bad.write_text(text.replace("budgets: [7, 20]", "budgets: [7, 30]"))
    assert main(["sweep", str(bad), "--dry-run", "--results", str(tmp_path)]) == 2
    assert "budget" in capsys.readouterr().err


# ---------------------------------------------------------------- command lines

COMMAND = re.compile(r"^(?:\$\s+)?(?:[A-Z_]+=\S+\s+)*(?:\S*/)?mixerlab\s+(.*)$")
PLACEHOLDER = re.compile(r"^(?:[A-Z][A-Z_]*(?:\.\.\.)?|\S*<[^>]+>\S*|\.\.\.)$")
SHELL = {"|", "||", "&&", ";", ">", ">>", "2>&1", "&"}


def command_lines(path: Path) -> list[str]:
    """The ``mixerlab ...`` command lines of a Markdown file: lines of code blocks that start
    with one (``$ `` prompts and ``\\`` continuations allowed), and code spans that hold one."""
    text, found = path.read_text(), []
    for lang, body in FENCE.findall(text):
        if lang == "yaml":
            continue
        for line in body.replace("\\\n", " ").splitlines():
            m = COMMAND.match(line.strip())
            if m:
                found.append("mixerlab " + m.group(1))
    prose = FENCE.sub("", text)
    for span in re.findall(r"(?<!`)`([^`]+)`(?!`)", prose):
        m = COMMAND.match(" ".join(span.split()))
        if m:
            found.append("mixerlab " + m.group(1))
    return found


def _stand_in(action: argparse.Action | None) -> str:
    """A valid value for a placeholder given to ``action``: its first choice, or a number."""
    if action is not None and action.choices is not None:
        return str(next(iter(action.choices)))
    return "1"


def parse_error(line: str) -> str | None:
    """Why ``line`` does not parse with the real CLI parser, or None. Placeholders (SPEC,
    RESULTS..., <name>) stand for values; one given to a typed option stands for a valid one."""
    from mixerlab.cli import SUBCOMMANDS, build_parser

    tokens = shlex.split(line, comments=True)[1:]
    for i, tok in enumerate(tokens):
        if tok in SHELL:
            tokens = tokens[:i]
            break
    if not tokens:
        return "no command"
    if len(tokens) == 1 and not tokens[0].startswith("-"):  # a command named in prose
        return None if tokens[0] in SUBCOMMANDS else f"no command {tokens[0]!r}"
    parser = build_parser()
    sub = {name: s for name, _, s in _hook()._subcommands(parser)}.get(tokens[0])
    options = {o: a for a in (sub._actions if sub else []) for o in a.option_strings}
    tokens = [_stand_in(options.get(tokens[i - 1])) if i and PLACEHOLDER.match(t) else t
              for i, t in enumerate(tokens)]
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            parser.parse_args(tokens)
    except SystemExit as stop:
        if stop.code not in (0, None):
            return err.getvalue().strip() or f"exit {stop.code}"
    return None


def test_command_line_checker_can_fail():
    assert parse_error("mixerlab sweep ablations/quick.yaml --dry-run") is None
    assert parse_error("mixerlab plan SPEC --pilot RESULTS... --no-cost") is None
    assert parse_error("mixerlab slurm SPEC --nodes N --gpus-per-node 8 --dry-run") is None
    assert parse_error("mixerlab sweep ablations/quick.yaml --dry-runn") is not None
    assert parse_error("mixerlab swep ablations/quick.yaml") is not None
    assert parse_error("mixerlab swep") is not None
    assert parse_error("mixerlab slurm SPEC --gpus-per-node 8") is not None  # --nodes required
    assert parse_error("mixerlab train --mixer convv") is not None


def test_every_mixerlab_command_line_parses():
    lines = {path: command_lines(path) for path in TEXTS}
    assert len(lines[README]) >= 5, "the README's command lines were not found: check command_lines"
    bad = [f"{_rel(path)}: {line}: {why}" for path, found in lines.items() for line in found
           if (why := parse_error(line))]
    assert not bad, "\n".join(bad)
