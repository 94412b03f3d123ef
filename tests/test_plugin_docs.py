"""docs/plugins.md against the code: its kinds table is the contracts', its surface is ``fusionkit.api``'s."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import fusionkit.api
from fusionkit.contracts import CONTRACTS, Contract
from fusionkit.registry import KINDS

ROOT = Path(__file__).resolve().parent.parent
DOC = (ROOT / "docs" / "plugins.md").read_text()


def contract_row(kind: str, contract: Contract) -> str:
    """The row docs/plugins.md's kinds table has for ``kind``, written from its contract."""
    required = [f"`{name}`" for name in contract.required()]
    required += [f"`{name}` when `{other}` is `{value!r}`" for name, (other, value) in contract.required_when.items()]
    optional = [
        f"`{name}` = `{default!r}`" + (" on the factory" if name in contract.on_factory() else "")
        for name, default in contract.optional().items()
    ]
    built = "`torch.nn.Module`" if contract.module else "any object"
    return f"| `{kind}` | `{contract.built_as}` | {built} | {', '.join(required)} | {', '.join(optional) or '-'} |"


def test_kinds_table_is_written_from_the_contracts():
    for kind, contract in CONTRACTS.items():
        assert contract_row(kind, contract) in DOC, f"docs/plugins.md: the {kind} row should read\n{contract_row(kind, contract)}"


def test_docs_name_every_kind_and_no_other():
    rows = re.findall(r"^\| `(\w+)` \| `factory\(", DOC, flags=re.MULTILINE)
    headings = re.findall(r"^### `(\w+)`", DOC, flags=re.MULTILINE)
    assert rows == list(KINDS)
    assert headings == list(KINDS)


def test_each_kind_section_names_its_protocol_and_every_member():
    sections = dict(zip(re.findall(r"^### `(\w+)`", DOC, flags=re.MULTILINE), re.split(r"^### `\w+`.*$", DOC, flags=re.MULTILINE)[1:]))
    for kind, contract in CONTRACTS.items():
        section = sections[kind].split("\n## ")[0]
        assert f"`fusionkit.api.{contract.protocol.__name__}`" in section, kind
        for name in contract.members():
            assert f"`{name}" in section, f"the {kind} section of docs/plugins.md does not say what {name} is"


def test_docs_list_the_whole_public_surface_and_nothing_else():
    documented = set(re.findall(r"`fusionkit\.api\.(\w+)`", DOC))
    surface = DOC.split("## 2. ")[1].split("\n## ")[0]
    listed = set(re.findall(r"`(\w+)`", surface))
    assert set(fusionkit.api.__all__) <= listed, set(fusionkit.api.__all__) - listed
    assert documented <= set(fusionkit.api.__all__), documented - set(fusionkit.api.__all__)


def test_code_in_the_docs_imports_only_the_public_surface():
    for block in re.findall(r"```python\n(.*?)```", DOC, flags=re.DOTALL):
        for node in ast.walk(ast.parse(block)):
            modules = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module] if isinstance(node, ast.ImportFrom) else []
            for module in modules:
                assert module.split(".")[0] != "fusionkit" or module in ("fusionkit", "fusionkit.api"), module


def test_python_in_the_docs_runs(monkeypatch):
    """Every code block runs (the example attention plugin importable), and every test it defines passes."""
    monkeypatch.syspath_prepend(str(ROOT / "docs" / "examples" / "fusionkit-example-attention"))
    for block in re.findall(r"```python\n(.*?)```", DOC, flags=re.DOTALL):
        namespace: dict = {}
        exec(compile(block, "docs/plugins.md", "exec"), namespace)
        for name, test in namespace.items():
            if name.startswith("test_"):
                test()
