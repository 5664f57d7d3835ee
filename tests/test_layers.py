"""The import direction of jembed, enforced: layers import downward only, no module cycles, imports at the top.

`LAYERS` is the one place the order is written (docs/architecture.md explains it). Every import counts, also one
inside a function, read from the source with `ast`, so an edge cannot hide from this test. The checker is also run on
small packages written here with an upward import and a cycle, so a test that passes means the rule was checked.
"""

import ast
import importlib
import importlib.util
import pathlib
import textwrap

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]

# Bottom to top. A module may import modules of its own layer or of lower ones; the package root (jembed/__init__.py,
# the public names) sits above them all.
LAYERS = (
    "utils",  # leaf utilities: images, distributed, viz, Beam, config checks (nothing of jembed below them)
    "workdir",  # the workdir's names, atomic files, provenance, the records stages hand each other
    "shapes",  # sources, mesh loading, the procedural catalog, point clouds
    "render",  # camera, the EGL and embree backends, LFD views, thumbnails
    "embedding",  # the shape side: HoG, descriptors, distances, Sammon, out-of-sample
    "data",  # the image side: synthesis, TFDS builds, the grain pipeline
    "backbones",  # pretrained networks and their feature caches
    "training",  # the networks, losses, training loops, checkpoints
    "api",  # what users call: embed, retrieval, fusion, query, pose overlay, inversion, placing new shapes
    "evaluation",  # the paper's protocols, measured through the public API
    "apps",  # the stages chained, the demo, the inversion gallery, the web page, config validation
)
# The packages whose modules' attributes are checked to exist.
_PROJECT = ("jembed", "configs", "launch")
# Imports that must stay inside functions, each for a reason written beside it in the code.
LAZY = {
    "torch",  # optional: only .pt/.pth weights need it (jembed/backbones/convert.py)
    "apache_beam",  # optional `beam` extra
    "skimage",  # optional: marching cubes of voxel grids
    "jembed.api",  # the root's lazy public names (PEP 562), so the shape and data stages skip flax and orbax
    "jembed.apps.serve",  # launch/serve.py: gradio is the optional `serve` extra
}


def modules(root: pathlib.Path) -> dict[str, tuple[pathlib.Path, bool]]:
  """{dotted module name: (file, is a package __init__)} of the package at `root`."""
  out = {}
  for f in sorted(root.rglob("*.py")):
    parts = list(f.relative_to(root.parent).with_suffix("").parts)
    is_pkg = parts[-1] == "__init__"
    out[".".join(parts[:-1] if is_pkg else parts)] = (f, is_pkg)
  return out


def imports(name: str, path: pathlib.Path, is_pkg: bool, known) -> list[tuple[str, int, bool]]:
  """[(imported module of the package, line, inside a function)] of one module; relative imports resolved."""
  tree = ast.parse(path.read_text())
  base = name.split(".") if is_pkg else name.split(".")[:-1]
  nested = {
      id(n) for f in ast.walk(tree) if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef)) for n in ast.walk(f)
  }
  found = []
  for node in ast.walk(tree):
    if isinstance(node, ast.Import):
      candidates = [a.name for a in node.names]
    elif isinstance(node, ast.ImportFrom):
      module = (
          ".".join(base[: len(base) - node.level + 1] + [node.module or ""]).strip(".")
          if node.level
          else (node.module or "")
      )
      candidates = [f"{module}.{a.name}" for a in node.names] + [module]
    else:
      continue
    for c in candidates:
      while c and c not in known:
        c = c.rpartition(".")[0]
      if c and c != name:
        found.append((c, node.lineno, id(node) in nested))
        break
  return found


def layer(module: str, layers) -> int:
  """The index of the module's layer; the root package is above every layer."""
  parts = module.split(".")
  if len(parts) == 1:
    return len(layers)
  if parts[1] not in layers:
    raise AssertionError(f"{module} is in no layer: add its package to LAYERS in {__file__}")
  return layers.index(parts[1])


def violations(root: pathlib.Path, layers=LAYERS) -> list[str]:
  """Every upward import and every cycle of the package at `root`, one line each."""
  mods = modules(root)
  graph = {m: {target for target, _, _ in imports(m, f, is_pkg, mods)} for m, (f, is_pkg) in mods.items()}
  found = []
  for m, (f, is_pkg) in mods.items():
    for target, line, _ in imports(m, f, is_pkg, mods):
      if layer(target, layers) > layer(m, layers):
        found.append(
            f"{f.relative_to(root.parent)}:{line}: {m} ({layers[layer(m, layers)]}) imports {target} "
            f"({'the root' if layer(target, layers) == len(layers) else layers[layer(target, layers)]})"
        )
  found += [f"import cycle: {' -> '.join(c)}" for c in cycles(graph)]
  return found


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
  """The strongly connected components of more than one module (Tarjan), each sorted, the list sorted."""
  index, low, stack, on_stack, out = {}, {}, [], set(), []

  def visit(v):
    index[v] = low[v] = len(index)
    stack.append(v)
    on_stack.add(v)
    for w in sorted(graph.get(v, ())):
      if w not in index:
        visit(w)
        low[v] = min(low[v], low[w])
      elif w in on_stack:
        low[v] = min(low[v], index[w])
    if low[v] == index[v]:
      component = []
      while True:
        w = stack.pop()
        on_stack.discard(w)
        component.append(w)
        if w == v:
          break
      if len(component) > 1:
        out.append(sorted(component))

  for v in sorted(graph):
    if v not in index:
      visit(v)
  return sorted(out)


def test_jembed_imports_downward_only_and_has_no_cycles():
  assert violations(REPO / "jembed") == []


def test_every_package_of_jembed_is_in_a_layer():
  packages = {p.name for p in (REPO / "jembed").iterdir() if p.is_dir() and (p / "__init__.py").exists()}
  assert packages == set(LAYERS)


def test_few_modules_at_the_top_and_no_two_modules_share_a_file_name():
  top = [p.name for p in (REPO / "jembed").glob("*.py") if p.name != "__init__.py"]
  assert len(top) <= 6, top
  names = [p.name for p in (REPO / "jembed").rglob("*.py") if p.name != "__init__.py"]
  assert sorted(n for n in set(names) if names.count(n) > 1) == []


@pytest.mark.parametrize("folder", ["jembed", "launch"])
def test_imports_inside_functions_are_only_the_lazy_optional_ones(folder):
  lazy = []
  for f in sorted((REPO / folder).rglob("*.py")):
    for node in ast.walk(ast.parse(f.read_text())):
      if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
        for inner in ast.walk(node):
          if isinstance(inner, (ast.Import, ast.ImportFrom)):
            names = [a.name for a in inner.names] if isinstance(inner, ast.Import) else [inner.module or ""]
            lazy += [
                f"{f.relative_to(REPO)}:{inner.lineno}: {n}"
                for n in names
                if not any(n == ok or n.startswith(ok + ".") for ok in LAZY)
            ]
  assert lazy == []


def test_configs_are_data():
  """configs/*.py import only ml_collections and each other, never jembed (validation lives in jembed)."""
  for f in sorted((REPO / "configs").glob("*.py")):
    for node in ast.walk(ast.parse(f.read_text())):
      if isinstance(node, (ast.Import, ast.ImportFrom)):
        names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
        assert all(n.split(".")[0] in ("ml_collections", "configs", "typing", "os") for n in names), (f, names)


def _package(tmp_path, sources: dict[str, str]) -> pathlib.Path:
  root = tmp_path / "pkg"
  for rel, text in sources.items():
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
  return root


def test_the_checker_finds_an_upward_import_even_inside_a_function(tmp_path):
  root = _package(
      tmp_path,
      {
          "__init__.py": "",
          "low/__init__.py": "",
          "high/__init__.py": "",
          "low/a.py": "def f():\n  from pkg.high import b\n  return b\n",
          "high/b.py": "from pkg.low import a\n",
      },
  )
  found = violations(root, ("low", "high"))
  assert len(found) == 2 and "pkg.low.a (low) imports pkg.high.b (high)" in found[0], found
  assert found[1] == "import cycle: pkg.high.b -> pkg.low.a"


def test_the_checker_finds_a_cycle_within_one_layer_and_relative_imports(tmp_path):
  root = _package(
      tmp_path,
      {
          "__init__.py": "",
          "low/__init__.py": "",
          "low/a.py": "from . import b\n",
          "low/b.py": "from .c import X\n",
          "low/c.py": "from pkg.low import a\nX = 1\n",
      },
  )
  assert violations(root, ("low",)) == ["import cycle: pkg.low.a -> pkg.low.b -> pkg.low.c"]


def test_the_checker_accepts_a_clean_package(tmp_path):
  root = _package(
      tmp_path,
      {
          "__init__.py": "",
          "low/__init__.py": "",
          "high/__init__.py": "",
          "low/a.py": "import os\n",
          "high/b.py": "from pkg.low import a\nfrom pkg import low\n",
      },
  )
  assert violations(root, ("low", "high")) == []


def _attribute_uses(tree: ast.AST):
  """(name, attribute, line) of every `name.attribute` whose name is not bound in an enclosing function."""

  def visit(node, bound):
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
      a = node.args
      names = {x.arg for x in a.posonlyargs + a.args + a.kwonlyargs + [a.vararg, a.kwarg] if x}
      body = node.body if isinstance(node.body, list) else [node.body]
      names |= {n.id for st in body for n in ast.walk(st) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)}
      bound = bound | names
    if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id not in bound:
      yield node.value.id, node.attr, node.lineno
    for child in ast.iter_child_nodes(node):
      yield from visit(child, bound)

  yield from visit(tree, frozenset())


@pytest.mark.parametrize("folder", ["jembed", "launch", "configs"])
def test_every_attribute_of_a_project_module_exists(folder):
  """`module.name` of an imported jembed/configs/launch module names something it defines (a moved or renamed
  function fails here, not in the one launcher that calls it)."""
  missing = []
  for f in sorted((REPO / folder).rglob("*.py")):
    tree = ast.parse(f.read_text())
    modules = {}
    for node in tree.body:
      if isinstance(node, ast.ImportFrom) and not node.level and (node.module or "").split(".")[0] in _PROJECT:
        for a in node.names:
          try:  # `from package import module` (not `from module import function`)
            spec = importlib.util.find_spec(f"{node.module}.{a.name}")
          except ModuleNotFoundError:
            spec = None
          if spec is not None:
            modules[a.asname or a.name] = f"{node.module}.{a.name}"
    for name, attribute, line in _attribute_uses(tree):
      if name in modules and not hasattr(importlib.import_module(modules[name]), attribute):
        missing.append(f"{f.relative_to(REPO)}:{line}: {name}.{attribute}")
  assert missing == []
