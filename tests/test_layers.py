"""The engine's packages stand in layers: a package imports only packages of the layers below its own.

Read from the code's own import statements (module level and inside functions alike), so a new upward
import fails here the day it is written: `capture` (tshark I/O) knows no protocol and no pipeline, the
protocol state machines know no pipeline, nothing below the adapters knows Splunk or the command line.
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Dict, Iterator, List, Set, Tuple

SRC = Path(__file__).resolve().parents[1] / "src" / "smbtrail"

LAYERS: Tuple[Tuple[str, ...], ...] = (
    ("cli",),  # the command line
    ("splunk", "whatif"),  # the Splunk adapters; the capture rewriter and coverage report (offline tools)
    ("engine",),  # the one entry point every adapter calls
    ("network",),  # the network pipeline: captures and Zeek logs -> network records
    ("zeek",),  # Zeek logs as a network source
    ("fusion",),  # network + host records -> trails
    ("hostlog", "recognize", "encryption"),  # host logs; commands from operations; what encryption leaves
    ("protocols",),  # SMB1/2/3, DCE/RPC, Kerberos/NTLM state machines over tshark rows
    ("interfaces",),  # per-interface argument decoders (tshark fields and NDR stubs)
    ("capture", "output"),  # tshark I/O, field list and row accessors, inputs; writers
    ("records", "options", "windows_names"),  # the record model; every setting of a run; Windows' names for codes
    ("lookups", "input_files", "progress", "pydantic_api", "tempdirs", "__init__"),  # knowledge tables, safe file
    # access, how far a run is, pydantic, temporary directories a killed run cannot leave for good
)


def _unit(module: str) -> str:
    """`smbtrail.protocols.smb2` -> `protocols`; `smbtrail` -> `__init__`."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _imports(path: Path) -> Iterator[Tuple[str, int]]:
    """The smbtrail modules a file imports, with the line."""
    parts = list(path.relative_to(SRC.parent).with_suffix("").parts)
    package = parts[:-1]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = package[: len(package) - node.level + 1]
            if node.module:
                yield ".".join(base + [node.module]), node.lineno
            else:  # `from .. import x`: the module x, or a name the package itself holds
                for alias in node.names:
                    named = SRC.parent.joinpath(*base, alias.name)
                    is_module = named.with_suffix(".py").is_file() or named.is_dir()
                    yield ".".join(base + [alias.name] if is_module else base), node.lineno
        elif isinstance(node, ast.ImportFrom) and node.module:
            yield node.module, node.lineno
        elif isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno


def package_imports() -> Dict[Tuple[str, str], List[str]]:
    """(importer, imported) -> where, for every import from one top-level unit of smbtrail to another."""
    found: Dict[Tuple[str, str], List[str]] = {}
    for path in sorted(SRC.rglob("*.py")):
        parts = list(path.relative_to(SRC.parent).with_suffix("").parts)
        me = _unit(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
        for module, line in _imports(path):
            if module == "smbtrail" or module.startswith("smbtrail."):
                other = _unit(module)
                if other != me:
                    found.setdefault((me, other), []).append(f"{path.relative_to(SRC)}:{line}")
    return found


def _rank() -> Dict[str, int]:
    return {unit: n for n, layer in enumerate(LAYERS) for unit in layer}


def test_every_package_and_module_has_a_layer():
    units: Set[str] = {p.stem if p.is_file() else p.name for p in SRC.iterdir()
                       if (p.suffix == ".py" or (p / "__init__.py").is_file())}
    assert units - set(_rank()) == set(), "give each new package or top-level module its layer above"
    assert set(_rank()) - units == set(), "a layer names a package that is gone"


def test_no_package_imports_a_package_above_or_beside_it():
    rank = _rank()
    upward = {f"{a} -> {b}": where for (a, b), where in package_imports().items() if rank[b] <= rank[a]}
    assert upward == {}


def test_capture_imports_neither_protocols_nor_network():
    imported = {b for (a, b) in package_imports() if a == "capture"}
    assert imported <= {"input_files", "tempdirs"}, imported
    assert "network" not in {b for (a, b) in package_imports() if a == "protocols"}


def _events_used(path: Path) -> Iterator[Tuple[str, int]]:
    """The methods a protocol handler calls on its `events` (the pipeline above it)."""
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Attribute) and node.value.attr == "events"
                and isinstance(node.value.value, ast.Name) and node.value.value.id == "self"):
            yield node.attr, node.lineno


def test_protocol_handlers_report_only_through_the_declared_events():
    """The handlers reach the pipeline only by the methods protocols/events.py declares, and the network
    analyzer implements each of them with the declared signature."""
    import inspect

    from smbtrail.network.analyzer import Analyzer
    from smbtrail.protocols.events import ProtocolEvents

    declared = {name for name, _ in inspect.getmembers(ProtocolEvents, inspect.isfunction) if not name.startswith("_")}
    undeclared = [f"{path.name}:{line} {name}" for path in sorted((SRC / "protocols").glob("*.py"))
                  for name, line in _events_used(path) if name not in declared]
    assert undeclared == []
    assert ProtocolEvents in Analyzer.__mro__
    for name in declared:
        assert inspect.signature(getattr(Analyzer, name)) == inspect.signature(getattr(ProtocolEvents, name)), name
