"""bert_tf's packages depend on each other one way: lower layers never import higher ones.

The static check parses every module with `ast` and counts every import, function-local ones
included (a lazy import is still a dependency), so a cycle hidden inside a function fails it too.
"""

import ast
import graphlib
import pathlib

from tests.repo_process import ROOT, run_python

PACKAGE = ROOT / "bert_tf"

# Rank of each top-level part of bert_tf: an import must go to a strictly lower rank, except within
# the application layer (the CLI, its commands, the demo, the benchmarks, `bert_tf/__init__`).
APPLICATION = 7
RANKS = {
    "fileio": 0, "atomic": 0.5,
    "config": 1, "text": 1, "layers": 1, "metrics": 1, "plots": 1,
    "data": 2, "weights": 2,
    "models": 3,
    "training": 4,
    "tasks": 5,
    "export": 6,
    "__init__": APPLICATION, "cli": APPLICATION, "commands": APPLICATION, "demo": APPLICATION,
    "benchmarks": APPLICATION, "search": APPLICATION, "explain": APPLICATION,
}


def module_name(path: pathlib.Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(source: str, package: list) -> set:
    """Every bert_tf module a module's `source` imports, at any depth of the file (absolute or
    relative to `package`, the dotted parts of the package the module is in)."""
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package[:len(package) - node.level + 1] + ([base] if base else []))
            if base != "bert_tf":  # `from bert_tf import X` is an import of X, not of the root
                found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)  # `from pkg import module`
    return {name for name in found if name == "bert_tf" or name.startswith("bert_tf.")}


def module_imports(path: pathlib.Path) -> set:
    package = module_name(path).split(".")
    return imported_modules(path.read_text(encoding="utf-8"),
                            package if path.name == "__init__.py" else package[:-1])


def part(module: str) -> str:
    """The top-level part of bert_tf a module belongs to; '__init__' for the package itself and for
    names it re-exports (`from bert_tf import BertEncoder` goes through `bert_tf/__init__`)."""
    pieces = module.split(".")
    return pieces[1] if len(pieces) > 1 and pieces[1] in RANKS else "__init__"


def part_imports() -> dict:
    """part → {imported part: [importing modules]} over every module of bert_tf."""
    graph = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        source = module_name(path)
        for target in module_imports(path):
            if part(target) != part(source):
                graph.setdefault(part(source), {}).setdefault(part(target), []).append(source)
    return graph


def test_every_part_of_the_package_has_a_rank():
    parts = {module_name(p).split(".")[1] for p in PACKAGE.rglob("*.py") if p != PACKAGE / "__init__.py"}
    assert parts <= set(RANKS), f"give these a rank in RANKS: {sorted(parts - set(RANKS))}"


def test_the_static_import_graph_goes_one_way_without_cycles():
    graph = part_imports()
    upward = sorted(f"{source} ({', '.join(sorted(set(modules)))}) imports {target}"
                    for source, targets in graph.items() for target, modules in targets.items()
                    if RANKS[target] >= RANKS[source]
                    and not RANKS[target] == RANKS[source] == APPLICATION)
    assert not upward, "imports against the layering:\n" + "\n".join(upward)
    # Within the application layer ranks are equal, so look for cycles explicitly.
    graphlib.TopologicalSorter({source: set(targets) for source, targets in graph.items()}).prepare()


def test_weights_never_import_models_even_lazily():
    models_imports = part_imports().get("weights", {}).get("models")
    assert not models_imports, f"bert_tf.weights modules importing bert_tf.models: {models_imports}"


def test_the_static_check_sees_function_local_and_relative_imports():
    source = ("import numpy\n"
              "def load():\n"
              "    from bert_tf.models.encoder import BertEncoder\n"
              "    from ..layers import dropout\n")
    assert imported_modules(source, ["bert_tf", "weights"]) == {
        "bert_tf.models.encoder", "bert_tf.models.encoder.BertEncoder", "bert_tf.layers",
        "bert_tf.layers.dropout"}
    assert imported_modules("from bert_tf import BertEncoder, text\n", ["bert_tf"]) == {
        "bert_tf.BertEncoder", "bert_tf.text"}
    assert [part(m) for m in ("bert_tf.BertEncoder", "bert_tf.text.tokenizer", "bert_tf")] == [
        "__init__", "text", "__init__"]


def test_importing_every_weights_module_loads_no_models_module():
    script = ("import sys\n"
              "import bert_tf.weights, bert_tf.weights.canonical, bert_tf.weights.google, "
              "bert_tf.weights.huggingface, bert_tf.weights.keras_hub, bert_tf.weights.model_garden, "
              "bert_tf.weights.safetensors_io\n"
              "print(sorted(m for m in sys.modules if m == 'bert_tf.models' "
              "or m.startswith('bert_tf.models.')))\n")
    proc = run_python(script)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]", f"bert_tf.weights imported {proc.stdout.strip()}"
