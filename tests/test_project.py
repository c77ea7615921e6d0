"""The repository as a stranger gets it: nothing in it speaks of how it is developed, the wheel
carries every bundled file and works from site-packages, and the command line's help fits a
terminal."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from conftest import ROOT

# Words about the development set-up that a user cannot act on. Split so that this file does not
# match itself.
_SETUP_WORDS = re.compile("|".join([
    r"work" + r"place", r"\blent\b", r"\bsessions? \d", r"\.\./" + r"shared", r"shared/" + r"data",
    r"BGCLEAN_" + r"SHARED", r"no GPU " + r"was (le" + r"nt|available)", r"device " + r"tool",
]), re.IGNORECASE)


def _tracked(*roots: str) -> list[Path]:
    out = subprocess.run(["git", "ls-files", *roots], cwd=ROOT, capture_output=True, text=True)
    if out.returncode != 0:  # an unpacked source archive: every file under the roots
        return [p for r in roots for p in ([ROOT / r] if (ROOT / r).is_file() else (ROOT / r).rglob("*"))
                if p.is_file()]
    return [ROOT / line for line in out.stdout.splitlines()]


def test_nothing_speaks_of_the_development_set_up():
    hits = []
    for path in _tracked("bgclean", "tests", "docs", "bench", "README.md", "pyproject.toml", "Makefile"):
        if path.suffix in (".py", ".md", ".yaml", ".toml", ".txt", ".cfg") or path.name == "Makefile":
            for n, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
                if _SETUP_WORDS.search(line):
                    hits.append(f"{path.relative_to(ROOT)}:{n}: {line.strip()[:100]}")
    assert not hits, "\n".join(hits)


def test_the_readme_is_short_and_shows_its_picture():
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= 160
    pictures = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", readme)
    assert pictures and all((ROOT / p).is_file() for p in pictures), pictures
    assert "make demo" in readme and "make test" in readme


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
                    "-w", str(out), str(ROOT)], check=True, cwd=out)
    return next(out.glob("bgclean-*.whl"))


def test_the_wheel_carries_every_bundled_file(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    package = ROOT / "bgclean"
    bundled = [p for p in package.rglob("*") if p.is_file() and "__pycache__" not in p.parts]
    missing = [str(p.relative_to(ROOT)) for p in bundled if str(p.relative_to(ROOT)) not in names]
    assert not missing, missing
    assert not [n for n in names if n.startswith(("tests/", "bench/", "samples/"))]
    assert "bgclean/py.typed" in names  # type checkers read the package's annotations
    licences = {n.rsplit("/", 1)[-1] for n in names if ".dist-info/" in n}
    assert {"LICENSE", "NOTICE"} <= licences, sorted(licences)


def test_the_notice_names_every_bundled_file_with_its_own_terms():
    notice = (ROOT / "NOTICE").read_text()
    weights = [p.name for p in (ROOT / "bgclean" / "weights" / "files").iterdir()
               if p.suffix in (".onnx", ".pth", ".pt", ".bin")]
    shipped = ["samples/" + p.name for p in (ROOT / "samples").iterdir() if p.suffix != ".md"]
    assert weights and all(n in notice for n in weights + shipped), notice


def test_the_installed_wheel_runs_from_site_packages(wheel, tmp_path):
    """Installed (not editable) into a folder of its own: the command answers, the bundled configs
    and weights load from the install, and a training run's output lands in the current folder."""
    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(site),
                    str(wheel)], check=True)
    work = tmp_path / "work"
    work.mkdir()
    env = {"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path),
           "BGCLEAN_HOME": str(tmp_path / "home")}
    script = f"""
import bgclean, pathlib
assert pathlib.Path(bgclean.__file__).is_relative_to({str(site)!r}), bgclean.__file__
from bgclean.pipeline.config import load_config
from bgclean.train.config import load_train_config
from bgclean.weights.registry import REGISTRY
from bgclean.weights.store import resolve
load_config("fast", {{}})
cfg = load_train_config("cpu", data="data")
assert cfg.out == str(pathlib.Path.cwd() / "runs" / "inpaint-cpu"), cfg.out
print(resolve(REGISTRY.get("inpaint.dmfn")))
"""
    run = subprocess.run([sys.executable, "-c", script], cwd=work, env=env, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert str(tmp_path / "home") in run.stdout or str(site) in run.stdout
    card = site / "bgclean" / "weights" / "files" / "inpaint_dmfn.md"
    assert card.is_file()
    cli = subprocess.run([sys.executable, "-m", "bgclean", "train", "--config", "cpu"], cwd=work, env=env,
                         capture_output=True, text=True)
    assert cli.returncode == 2 and "--data DIR" in cli.stderr, cli.stderr
    assert not (site / "runs").exists() and not (work / "runs").exists()


@pytest.mark.parametrize("command", [[], ["run"], ["batch"], ["weights"], ["weights", "pull"], ["train"]])
def test_every_help_fits_an_80_column_terminal(command):
    import os

    run = subprocess.run([sys.executable, "-m", "bgclean", *command, "--help"], capture_output=True, text=True,
                         env={**os.environ, "COLUMNS": "80"})
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    assert max(len(line) for line in lines) <= 80, [line for line in lines if len(line) > 80]


def test_every_command_line_in_the_readme_parses():
    """The README's examples use flags and subcommands the command line has."""
    import shlex

    from bgclean import cli

    lines = [line.split("#")[0].strip() for line in (ROOT / "README.md").read_text().splitlines()]
    commands = [shlex.split(line)[1:] for line in lines if line.startswith("bgclean ")]
    assert len(commands) >= 15
    for argv in commands:
        cli.parse_args(argv)  # SystemExit on an unknown flag or choice


# The package's layers, bottom first: a module imports from its own layer or those below it, so a
# library user can take the stages without the pipeline, the pipeline without the command line.
_LAYERS = [
    {"errors", "lazy", "settings", "tuning", "ops", "io", "holes", "classical"},
    {"models"},
    {"weights"},
    {"stages"},
    {"pipeline"},
    {"hooks", "train", "cli", "__main__", ""},  # "": the package's own lazy exports
]


def _layer(module: str) -> int:
    part = module.split(".")[1] if "." in module else ""
    return next(i for i, names in enumerate(_LAYERS) if part in names)


def _is_module(name: str) -> bool:
    return (ROOT / "bgclean" / f"{name}.py").is_file() or (ROOT / "bgclean" / name).is_dir()


def _imports(path: Path, module: str) -> set[str]:
    """The bgclean modules ``path`` (module ``module``) imports, anywhere in it."""
    found = set()
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == "bgclean"}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join(up + ([node.module] if node.module else []))
            if base.split(".")[0] == "bgclean":
                # "from bgclean import classical" imports that module; "import __version__", the package
                found |= {f"{base}.{a.name}" if base == "bgclean" and _is_module(a.name) else base
                          for a in node.names}
    return found


def test_no_module_imports_from_a_layer_above_its_own():
    upward = []
    for path in sorted((ROOT / "bgclean").rglob("*.py")):
        module = ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
        for target in _imports(path, module):
            if _layer(target) > _layer(module):
                upward.append(f"{module} imports {target}")
    assert not upward, upward
    # and the check sees imports: the pipeline does use the stages
    assert "bgclean.stages.segment" in _imports(ROOT / "bgclean/pipeline/runner.py", "bgclean.pipeline.runner")


def test_no_stage_imports_another_stage():
    crossing = []
    for path in sorted((ROOT / "bgclean" / "stages").rglob("*.py")):
        parts = path.relative_to(ROOT / "bgclean" / "stages").parts
        if len(parts) < 2:
            continue
        module = ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
        for target in _imports(path, module):
            names = target.split(".")
            if names[:2] == ["bgclean", "stages"] and len(names) > 2 and names[2] != parts[0]:
                crossing.append(f"{module} imports {target}")
    assert not crossing, crossing
