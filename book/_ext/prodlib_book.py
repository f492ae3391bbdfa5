"""Sphinx extension of the study's book: tidy executed notebooks before myst-nb renders them.

Loaded through ``sphinx.local_extensions`` in ``_config.yml``. On Sphinx's ``source-read`` event, for each
notebook page it

* adds ``remove-cell`` to cells tagged with one of ``prodlib_hide_tags`` (papermill tags the cell it injects
  ``injected-parameters``; the reader sees the parameters cell, not papermill's copy);
* trims text outputs longer than ``prodlib_max_output_lines`` lines (head and tail kept, a marker between);
* warns (an error under ``--warningiserror``) on an error output or a raw traceback, and on a figure output
  without a caption (cell metadata ``mystnb.figure.caption``), so that a broken run cannot publish quietly.

It also adds the directive ``prodlib-profiles``: a table of chosen fields of every profile, read from
:data:`prodlib.config.PROFILES` at build time, so the *Reproduce* chapter cannot drift from the code; and
``prodlib-estimate``: a profile's training time on each machine of ``benchmarks/rates.json``, computed from the
per-sample rates ``benchmarks/bench_rates.py`` measured there. In chapters, ``{{ repository_url }}`` (code
blocks too) becomes ``repository.url`` of ``_config.yml``.
"""

from __future__ import annotations

import json
import os
from typing import Any

from docutils import nodes
from docutils.parsers.rst import directives
from sphinx.application import Sphinx
from sphinx.util import logging
from sphinx.util.docutils import SphinxDirective

logger = logging.getLogger(__name__)

IMAGE_MIMES = ("image/png", "image/jpeg", "image/svg+xml")
TRACEBACK_MARKER = "Traceback (most recent call last)"


def _text(value: Any) -> str:
    return "".join(value) if isinstance(value, list) else str(value)


def trim_text(text: str, max_lines: int) -> tuple[str, int]:
    """``text`` with its middle replaced by a marker when longer than ``max_lines``; and the lines cut."""
    lines = text.splitlines(keepends=True)
    if max_lines <= 0 or len(lines) <= max_lines:
        return text, 0
    tail = max(2, max_lines // 4)
    head = max_lines - tail - 1
    cut = len(lines) - head - tail
    marker = f"... [{cut} lines trimmed in the book; the executed notebook in runs/ has them all] ...\n"
    return "".join(lines[:head] + [marker] + lines[-tail:]), cut


def tidy_notebook(nb: dict[str, Any], *, hide_tags: set[str], max_lines: int,
                  require_captions: bool) -> tuple[list[str], int]:
    """Tidy the notebook ``nb`` in place; return the problems found and the number of outputs trimmed."""
    problems: list[str] = []
    trimmed = 0
    for index, cell in enumerate(nb.get("cells", [])):
        meta = cell.setdefault("metadata", {})
        tags = list(meta.get("tags", []))
        if hide_tags.intersection(tags) and "remove-cell" not in tags:
            tags.append("remove-cell")
            meta["tags"] = tags
        if cell.get("cell_type") != "code":
            continue
        removed = "remove-cell" in tags or "remove-output" in tags
        label = f"cell {index + 1}"
        has_caption = bool(((meta.get("mystnb") or {}).get("figure") or {}).get("caption"))
        for out in cell.get("outputs", []):
            kind = out.get("output_type")
            if kind == "error":
                problems.append(f"{label}: error output {out.get('ename')}: {out.get('evalue')}")
                continue
            if kind == "stream":
                text = _text(out.get("text", ""))
                if TRACEBACK_MARKER in text:
                    problems.append(f"{label}: a traceback printed to {out.get('name')}")
                new, cut = trim_text(text, max_lines)
                if cut:
                    out["text"] = new
                    trimmed += 1
            elif kind in ("execute_result", "display_data"):
                data = out.get("data", {})
                if "text/plain" in data and len(data) == 1:
                    new, cut = trim_text(_text(data["text/plain"]), max_lines)
                    if cut:
                        data["text/plain"] = new
                        trimmed += 1
                is_glue = "scrapbook" in (out.get("metadata") or {})
                if (require_captions and not removed and not is_glue and not has_caption
                        and any(m in data for m in IMAGE_MIMES)):
                    problems.append(f"{label}: a figure without a caption (set cell metadata mystnb.figure.caption)")
    return problems, trimmed


def format_value(value: Any) -> str:
    """A profile field's value as table text (tuples as comma lists, ``None`` as "all")."""
    if value is None:
        return "all"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, tuple):
        return ", ".join(str(v) for v in value) if value else "—"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def profile_table_markdown(fields: list[str]) -> str:
    """A MyST table: one row per field, one column per profile of :data:`prodlib.config.PROFILES`."""
    from prodlib.config import PROFILES

    names = list(PROFILES)
    lines = ["| field | " + " | ".join(f"`{n}`" for n in names) + " |",
             "|---|" + "---|" * len(names)]
    for name in fields:
        if not all(hasattr(p, name) for p in PROFILES.values()):
            raise ValueError(f"prodlib-profiles: {name!r} is not a field of prodlib.config.Profile")
        row = [format_value(getattr(PROFILES[n], name)).replace("|", "\\|") for n in names]
        lines.append(f"| `{name}` | " + " | ".join(row) + " |")
    return "\n".join(lines) + "\n"


def estimate_markdown(rates: list[dict[str, Any]], profile: str = "full") -> str:
    """A MyST table: hours of training of ``profile`` on each measured machine. Per model, epochs × training
    products ÷ samples per second: title and description (``text_epochs``), the image model once per value of
    ``{trainable_layers} ∪ k_sweep`` (``image_epochs``); early stopping only shortens it, downloads are extra."""
    from prodlib.config import PROFILES

    prof = PROFILES[profile]
    if prof.n_products is None or not isinstance(prof.test_size, int):
        raise ValueError(f"prodlib-estimate: profile {profile!r} has no fixed number of training products")
    n_train, image_runs = prof.n_products - prof.test_size, len({prof.trainable_layers, *prof.k_sweep})
    lines = ["| machine (backend, measured) | title | description | image | all |", "|---|---|---|---|---|"]
    for entry in rates:
        r = entry["rates"]
        hours = [prof.text_epochs * n_train / r["title_samples_per_s"] / 3600,
                 prof.text_epochs * n_train / r["description_samples_per_s"] / 3600,
                 prof.image_epochs * n_train * image_runs / r[f"images_per_s_{prof.image_size}px"] / 3600]
        cells = [f"{h:,.1f} h" for h in [*hours, sum(hours)]]
        machine = str(entry["machine"]).replace("|", "\\|")
        lines.append(f"| {machine} ({entry['backend']}, {entry['measured']}) | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


class EstimateDirective(SphinxDirective):
    """``{prodlib-estimate}`` with option ``:profile: full``: :func:`estimate_markdown` of ``benchmarks/rates.json``."""

    has_content = False
    option_spec = {"profile": directives.unchanged}

    def run(self) -> list[nodes.Node]:
        from prodlib.artifacts import repo_root

        try:
            rates = json.loads((repo_root() / "benchmarks" / "rates.json").read_text())
            text = estimate_markdown(rates, self.options.get("profile", "full"))
        except (OSError, ValueError, KeyError) as exc:
            return [self.state.document.reporter.error(f"prodlib-estimate: {exc}", line=self.lineno)]
        container = nodes.container(classes=["prodlib-estimate"])
        self.state.nested_parse(_string_list(text, self.get_source_info()[0]), self.content_offset, container)
        return [container]


class ProfilesDirective(SphinxDirective):
    """``{prodlib-profiles}`` with option ``:fields: a, b, c``: the profiles' values of those fields."""

    has_content = False
    option_spec = {"fields": directives.unchanged_required}

    def run(self) -> list[nodes.Node]:
        fields = [f.strip() for f in self.options.get("fields", "").replace(",", " ").split() if f.strip()]
        try:
            text = profile_table_markdown(fields)
        except ValueError as exc:
            return [self.state.document.reporter.error(str(exc), line=self.lineno)]
        container = nodes.container(classes=["prodlib-profiles"])
        self.state.nested_parse(_string_list(text, self.get_source_info()[0]), self.content_offset, container)
        return [container]


def _string_list(text: str, source: str) -> Any:
    from docutils.statemachine import StringList

    return StringList(text.splitlines(), source=source)


def _on_source_read(app: Sphinx, docname: str, source: list[str]) -> None:
    path = str(app.env.doc2path(docname))
    if not path.endswith(".ipynb"):  # chapters: {{ repository_url }} (code blocks too) from _config.yml
        source[0] = source[0].replace("{{ repository_url }}", app.config.html_theme_options.get("repository_url", ""))
        return
    try:
        nb = json.loads(source[0])
    except ValueError as exc:
        logger.warning(f"{docname}: not a JSON notebook ({exc})", location=docname)
        return
    problems, _ = tidy_notebook(nb, hide_tags=set(app.config.prodlib_hide_tags),
                                max_lines=int(app.config.prodlib_max_output_lines),
                                require_captions=bool(app.config.prodlib_require_captions))
    for problem in problems:
        logger.warning(f"{docname}: {problem}", location=docname)
    source[0] = json.dumps(nb)


def protect_attribute_docstring(app: Sphinx, what: str, name: str, obj: Any, options: Any, lines: list[str]) -> None:
    """Stop napoleon from reading "Where products come from: ..." as an attribute's *type*.

    napoleon treats the text before the first colon of an attribute's first docstring line as its type;
    prodlib's attribute docstrings are prose. A leading blank line makes napoleon see no inline type.
    """
    if what in ("attribute", "data", "property") and lines and ":" in lines[0] and not lines[0].startswith(":"):
        lines.insert(0, "")


def dedupe_scripts(app: Sphinx, pagename: str, templatename: str, context: dict[str, Any], doctree: Any) -> None:
    """Drop repeated inline ``<script>`` bodies from a page.

    In this Jupyter Book / Sphinx 7.4 combination sphinx-thebe and sphinx-togglebutton register their inline
    configuration scripts twice (once with filename ``None``, once with ``""``); the second
    ``const THEBE_JS_URL`` is a JavaScript error in the browser (found by ``tools/check_book.py``).
    Same filename and attributes = same script.
    """
    scripts = context.get("script_files")
    if not isinstance(scripts, list):
        return
    seen: set[tuple[Any, ...]] = set()
    unique = []
    for js in scripts:
        key = (getattr(js, "filename", js) or "", tuple(sorted((getattr(js, "attributes", {}) or {}).items())))
        if key not in seen:
            seen.add(key)
            unique.append(js)
    scripts[:] = unique


def setup(app: Sphinx) -> dict[str, Any]:
    # autodoc imports prodlib's model modules, which import Keras: use the light JAX backend for that unless
    # the builder chose one (TensorFlow itself is mocked in _config.yml's autodoc_mock_imports).
    os.environ.setdefault("KERAS_BACKEND", "jax")
    app.add_config_value("prodlib_hide_tags", ["injected-parameters"], "env")
    app.add_config_value("prodlib_max_output_lines", 60, "env")
    app.add_config_value("prodlib_require_captions", True, "env")
    app.add_directive("prodlib-profiles", ProfilesDirective)
    app.add_directive("prodlib-estimate", EstimateDirective)
    app.connect("source-read", _on_source_read)
    app.connect("autodoc-process-docstring", protect_attribute_docstring, priority=400)
    app.connect("html-page-context", dedupe_scripts, priority=100)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}
