"""Griffe extension for the docs build: read unindented doctest examples as Examples sections.

The layer docstrings write their examples Keras-style, as an `Example:` line followed by a
blank line and an unindented `>>>` block. Google-style parsing wants the block indented under
the section title; unindented, it is rendered as Markdown (nested block quotes, and a
`[...]` output line read as a cross-reference). This rewrites such a block, at docs-build time
only, into an indented `Examples:` section so it renders as code. Delete this file (and its
entry in mkdocs.yml) once the docstrings indent their examples.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

_UNINDENTED_EXAMPLE = re.compile(
    r"^Examples?:[ \t]*\n[ \t]*\n((?:>>>|\.\.\.)[^\n]*(?:\n[^\n]*\S[^\n]*)*)", re.MULTILINE
)


def _indent(match: re.Match[str]) -> str:
    body = "\n".join(f"    {line}" for line in match.group(1).splitlines())
    return f"Examples:\n{body}"


class DoctestExamples(griffe.Extension):
    """Indent `Example:` doctest blocks under an `Examples:` section before parsing."""

    def on_object(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = _UNINDENTED_EXAMPLE.sub(_indent, obj.docstring.value)
