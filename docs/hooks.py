"""MkDocs hook: the model cards, which live beside their weights, become pages of the site.

Each ``src/caloforge/pretrained/NAME/README.md`` is served as ``pretrained/NAME.md``, with an
index page listing them; links in a card to the repository's files are rewritten to plain text,
as the site holds only the docs.
"""

from __future__ import annotations

import re
from pathlib import Path

from mkdocs.structure.files import File, Files

_LINK = re.compile(r"\[([^\]]+)\]\((?!https?://)([^)]+)\)")


def _repository_links_as_text(text: str) -> str:
    """``[x](../../docs/lhcb-ecal.md)`` → a link to that page of the site; other local links
    (source files) → ``x`` as code."""

    def replace(match: re.Match) -> str:
        label, target = match.groups()
        page = re.search(r"docs/([\w.-]+\.md)(#.*)?$", target)
        if page:
            return f"[{label}](../{page.group(1)}{page.group(2) or ''})"
        return label if label.startswith("`") else f"`{label}`"

    return _LINK.sub(replace, text)


def on_files(files: Files, config) -> Files:
    root = Path(config.config_file_path).parent / "src" / "caloforge" / "pretrained"
    cards = sorted(root.glob("*/README.md"))
    lines = ["# Pretrained models", "", "One card per model, kept beside its weights.", ""]
    for card in cards:
        name = card.parent.name
        files.append(
            File.generated(
                config, f"pretrained/{name}.md", content=_repository_links_as_text(card.read_text())
            )
        )
        lines.append(f"- [{name}]({name}.md)")
    files.append(File.generated(config, "pretrained/index.md", content="\n".join(lines) + "\n"))
    return files
