"""Point the study at another repository (a fork): write its URL into ``_config.yml`` (``repository.url``, the one
place prodlib, the book and the Colab buttons read it from) and regenerate the two copies that cannot read it at
run time: the install line of each notebook's setup cell (Colab runs it before prodlib exists) and the Colab
badges of the README (GitHub renders it as is).

    python tools/retarget.py https://github.com/you/prodlib [--branch main]   # retarget
    python tools/retarget.py --check                                           # exit 1 when a copy disagrees
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
INSTALL = re.compile(r'(%pip install -q \\?"prodlib @ git\+)[^"\\@]+')  # in a notebook's JSON: \"
BADGE = re.compile(r"(https://colab\.research\.google\.com/github/)[^/\s)]+/[^/\s)]+/blob/[^/\s)]+/")


def configured() -> tuple[str, str]:
    """``(url, branch)`` of ``_config.yml``."""
    repo = yaml.safe_load((ROOT / "_config.yml").read_text())["repository"]
    return str(repo["url"]).rstrip("/"), str(repo.get("branch") or "main")


def expected_copies(url: str, branch: str) -> dict[Path, str]:
    """Every file holding a copy of the URL, with the text it should have."""
    owner_repo = url.removeprefix("https://github.com/")
    out = {}
    for nb in sorted((ROOT / "notebooks").glob("*.ipynb")):
        out[nb], found = INSTALL.subn(lambda m: m.group(1) + url, nb.read_text())
        if not found:
            sys.exit(f"{nb} has no '%pip install -q \"prodlib @ git+...\"' line in its setup cell; restore it")
    readme = ROOT / "README.md"
    out[readme] = BADGE.sub(lambda m: f"{m.group(1)}{owner_repo}/blob/{branch}/", readme.read_text())
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("url", nargs="?", help="https://github.com/<owner>/<repository>")
    ap.add_argument("--branch", default=None)
    ap.add_argument("--check", action="store_true", help="only report copies that disagree with _config.yml")
    args = ap.parse_args()
    if args.url:
        if not re.fullmatch(r"https://github\.com/[\w.-]+/[\w.-]+/?", args.url):
            ap.error(f"{args.url!r} is not https://github.com/<owner>/<repository> (Colab opens GitHub notebooks)")
        text = (ROOT / "_config.yml").read_text()
        text = re.sub(r"(?m)^(  url: ).*$", lambda m: m.group(1) + args.url.rstrip("/"), text, count=1)
        if args.branch:
            text = re.sub(r"(?m)^(  branch: ).*$", lambda m: m.group(1) + args.branch, text, count=1)
        (ROOT / "_config.yml").write_text(text)
    url, branch = configured()
    stale = [path for path, text in expected_copies(url, branch).items() if path.read_text() != text]
    if args.check:
        for path in stale:
            print(f"{path.relative_to(ROOT)} does not use {url} (run: python tools/retarget.py {url})")
        return 1 if stale else 0
    for path, text in expected_copies(url, branch).items():
        if path.suffix == ".ipynb":
            json.loads(text)  # still a notebook
        path.write_text(text)
    print(f"repository: {url} (branch {branch}); rewrote {len(stale)} file(s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
