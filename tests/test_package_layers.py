"""The README's diagram of the package's rooms is what the code does: every
`bittts_tf` import goes to a room its row lists (or its own row, or a leaf),
and every arrow the diagram draws is used by some import. The imports are
read from the source with `ast`, so nothing is imported and no TensorFlow is
loaded."""

import ast
import pathlib

ROOT = pathlib.Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "bittts_tf"
LEAVES = {"fileio", "cli", "install_layout", "header_cli", "lazy_exports"}
# The README's one arrow up: a voice opened with engine="c99" imports the
# engine's interpreter inside the function that opens it.
LAZY_ONLY = {("runtime", "engine")}


def readme_rows():
    """{room: (rooms of its row, rooms its arrow points to)} from the
    fenced diagram that follows "Each room imports only rooms"."""
    text = (ROOT / "README.md").read_text()
    start = text.index("Each room imports only rooms on the rows below it")
    block = text[start:].split("```")[1]
    rows = {}
    for line in block.strip().splitlines()[1:]:     # the first row is tools/, tests/
        left, _, right = line.partition("──►")
        row = {name.strip() for name in left.split(",")}
        targets = {name.strip() for name in right.split(",") if name.strip()}
        for room in row:
            rows[room] = (row, targets)
    return rows


def imports_by_room():
    """[(room, target room, lazy, file)] for every bittts_tf import."""
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE).parts
        room = parts[0] if len(parts) > 1 else parts[0][:-3]
        tree = ast.parse(path.read_text(), str(path))
        top = {id(node) for node in tree.body}
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module \
                    and node.module.split(".")[0] == "bittts_tf":
                dotted = node.module.split(".")
                targets = [dotted[1]] if len(dotted) > 1 else [a.name for a in node.names]
            elif isinstance(node, ast.Import):
                targets = [a.name.split(".")[1] for a in node.names
                           if a.name.startswith("bittts_tf.")]
            else:
                continue
            found += [(room, t, id(node) not in top, path.relative_to(ROOT)) for t in targets]
    return found


def test_every_import_follows_the_readme_diagram():
    rows = readme_rows()
    imports = imports_by_room()
    rooms = {room for room, *_ in imports} - LEAVES
    assert rooms == set(rows), f"rooms in the code {sorted(rooms)}, in the README {sorted(rows)}"
    wrong = set()
    for room, target, lazy, path in imports:
        if room in LEAVES:
            assert target in LEAVES, f"{path}: the leaf {room} imports {target}"
            continue
        row, allowed = rows[room]
        if target in LEAVES or target in row or target in allowed:
            continue
        if (room, target) in LAZY_ONLY and lazy:
            continue
        wrong.add(f"{path}: {room} -> {target}{' (inside a function)' if lazy else ''}")
    assert not wrong, "imports the README's diagram does not allow:\n" + "\n".join(sorted(wrong))


def test_every_arrow_of_the_diagram_is_used():
    used = {(room, target) for room, target, *_ in imports_by_room()}
    unused = [f"{room} -> {target}" for room, (row, targets) in readme_rows().items()
              if room in {r for r, _ in used}
              for target in targets
              if not any((member, target) in used for member in row)]
    assert not unused, f"arrows in the README no import uses: {unused}"


def test_the_lazy_arrow_up_is_lazy_and_tensorflow_free():
    """The engine's interpreter, which runtime loads for engine="c99", imports
    nothing from rooms that need TensorFlow."""
    ups = [(path, lazy) for room, target, lazy, path in imports_by_room()
           if (room, target) in LAZY_ONLY]
    assert ups and all(lazy for _, lazy in ups), ups
    seen, todo = set(), ["bittts_tf.engine.interpreter"]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        module = ROOT / name.replace(".", "/")
        path = module / "__init__.py" if module.is_dir() else module.with_suffix(".py")
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            else:
                continue
            assert not any(n.split(".")[0] in {"tensorflow", "keras", "tf_keras"}
                           for n in names), f"{path} imports {names}"
            for n in names:
                if n.split(".")[0] != "bittts_tf":
                    continue
                parents = n.split(".")
                todo += [".".join(parents[:i]) for i in range(2, len(parents) + 1)]
                if isinstance(node, ast.ImportFrom):
                    todo += [f"{n}.{a.name}" for a in node.names
                             if (ROOT / n.replace(".", "/") / f"{a.name}.py").exists()]
    rooms = {name.split(".")[1] for name in seen if name.count(".") >= 1}
    assert rooms <= {"engine", "litert", "quant"} | LEAVES, sorted(seen)
