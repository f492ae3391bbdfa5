"""Publishing basics: one repository URL (in ``_config.yml``) that a fork retargets with one command, no build
machine's paths in what is published, a licence matching the package metadata and a citation file."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from prodlib import colab
from prodlib.artifacts import repo_root
from prodlib.publish import relative_paths

ROOT = repo_root()


def _config() -> dict:
    return yaml.safe_load((ROOT / "_config.yml").read_text())


def _tracked() -> list[Path]:
    out = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    return [ROOT / f for f in out.splitlines() if (ROOT / f).is_file()]


def test_the_repository_url_is_read_from_config_yml() -> None:
    url = _config()["repository"]["url"]
    assert colab.repository_url() == url
    holders = {p.relative_to(ROOT).as_posix() for p in _tracked()
               if url.removeprefix("https://") in p.read_text(errors="replace")}
    # _config.yml, plus the install line of the notebooks' setup cells that tools/retarget.py writes from it
    assert holders - {"_config.yml"} <= {p.relative_to(ROOT).as_posix() for p in ROOT.glob("notebooks/*.ipynb")}
    for nb in sorted(ROOT.glob("notebooks/*.ipynb")):
        cells = json.loads(nb.read_text())["cells"]
        assert f'"prodlib @ git+{url}"' in "".join(cells[0]["source"]), nb.name
        assert f'setup_notebook("{nb.stem}")' in "".join(cells[0]["source"]), nb.name  # opens alone on Colab
        assert not any(url in "".join(c["source"]) for c in cells[1:]), nb.name
    done = subprocess.run([sys.executable, "tools/retarget.py", "--check"], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout  # README badges and setup cells agree with _config.yml


def test_a_fork_retargets_every_copy_with_one_command(tmp_path: Path) -> None:
    for rel in ("_config.yml", "README.md", "tools/retarget.py"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / rel, tmp_path / rel)
    shutil.copytree(ROOT / "notebooks", tmp_path / "notebooks")
    old = _config()["repository"]["url"]
    fork = "https://github.com/someone/prodlib-fork"
    done = subprocess.run([sys.executable, "tools/retarget.py", fork, "--branch", "dev"], cwd=tmp_path,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert yaml.safe_load((tmp_path / "_config.yml").read_text())["repository"] == {
        **_config()["repository"], "url": fork, "branch": "dev"}
    readme = (tmp_path / "README.md").read_text()
    assert "/github/someone/prodlib-fork/blob/dev/notebooks/01_data_exploration.ipynb" in readme
    assert old.removeprefix("https://github.com/") not in readme
    for nb in (tmp_path / "notebooks").glob("*.ipynb"):
        text = nb.read_text()
        assert f"git+{fork}" in text and old not in text
        json.loads(text)
    check = subprocess.run([sys.executable, "tools/retarget.py", "--check"], cwd=tmp_path, capture_output=True)
    assert check.returncode == 0
    bad = subprocess.run([sys.executable, "tools/retarget.py", "http://example.com/x"], cwd=tmp_path,
                         capture_output=True, text=True)
    assert bad.returncode != 0 and "github.com/<owner>/<repository>" in bad.stderr


def test_published_notebooks_lose_the_machine_paths(tmp_path: Path) -> None:
    root, runs = tmp_path / "repo", tmp_path / "repo" / "runs"
    text = json.dumps({"RUN_DIR": str(runs), "input_path": f"{root}/notebooks/01.ipynb",
                       "log": f"writing {runs}/smoke/02_title\n{sys.prefix}/lib/tqdm/auto.py:21: warning",
                       "weights": f"{Path.home()}/.keras/models/m.h5", "other": f"{root}x/kept"})
    out = json.loads(relative_paths(text, root, runs))
    assert out["RUN_DIR"] == "runs" and out["input_path"] == "./notebooks/01.ipynb"
    assert out["log"] == "writing runs/smoke/02_title\n<python>/lib/tqdm/auto.py:21: warning"
    assert out["weights"] == "~/.keras/models/m.h5"
    assert out["other"] == f"{root}x/kept"  # only whole folder names are replaced


def test_licence_and_citation_match_the_package() -> None:
    pyproject = (ROOT / "pyproject.toml").read_text()  # (tomllib needs Python 3.11)
    project = {k: re.search(rf'(?m)^{k} = "([^"]+)"', pyproject).group(1) for k in ("license", "version")}
    licence = (ROOT / "LICENSE").read_text()
    assert project["license"] == "MIT" and licence.startswith("MIT License")
    assert f"Copyright (c) {_config()['copyright']} {_config()['author']}" in licence
    cff = yaml.safe_load((ROOT / "CITATION.cff").read_text())
    assert cff["cff-version"] == "1.2.0" and cff["license"] == project["license"]
    assert cff["title"] == _config()["title"] and cff["version"] == project["version"]
    paper = cff["references"][0]
    assert paper["url"] == "https://arxiv.org/abs/1907.00420"
    assert [a["family-names"] for a in paper["authors"]] == ["Wirojwatanakul", "Wangperawong"]
