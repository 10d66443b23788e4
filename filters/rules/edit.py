"""One top-level key of a policy text replaced, every other line kept as written.

The console's thresholds page changes `thresholds:` of a domain's rules without
touching its rules or comments: the key's lines are found from the YAML node tree
(filters/rules/yaml_nodes.py) and swapped for one flow-style line.
"""

from __future__ import annotations

import yaml

from filters.rules.yaml_nodes import compose


class CannotEdit(ValueError):
    """The text's shape does not allow a line-wise change (say, a one-line flow mapping)."""


def _last_line(node: yaml.Node) -> int:
    """The 0-based line on which the node's text ends."""
    block = isinstance(node, yaml.MappingNode | yaml.SequenceNode) and not node.flow_style
    if block and node.value:
        last = node.value[-1]
        return _last_line(last[1] if isinstance(node, yaml.MappingNode) else last)
    end = node.end_mark
    if end.column == 0 and end.line > node.start_mark.line:
        return end.line - 1
    return end.line


def flow_number(value: float | None) -> str:
    """A number as YAML reads it back as the same number (no exponent), or null."""
    if value is None:
        return "null"
    text = f"{value:.4f}".rstrip("0").rstrip(".")
    return "0" if text in ("", "-0") else text


def set_key(text: str, key: str, line: str | None, after: str = "domain") -> str:
    """`text` with the top-level `key` replaced by `line` (`key: ...`), or removed when
    `line` is None; a missing key goes after the `after` key, else at the end."""
    root = compose(text)
    lines = text.split("\n")
    if root is None:
        return text if line is None else "\n".join([*lines, line]).lstrip("\n") + "\n"
    if not isinstance(root, yaml.MappingNode) or root.flow_style:
        raise CannotEdit("the policy is not a block mapping (one key per line): edit it as text")
    indent = " " * root.start_mark.column
    new = [indent + line] if line is not None else []
    for key_node, value_node in root.value:
        if getattr(key_node, "value", None) == key:
            first, last = key_node.start_mark.line, _last_line(value_node)
            if first == root.start_mark.line and root.start_mark.column > 0:
                raise CannotEdit(f"{key}: starts on the line of another value: edit it as text")
            return "\n".join(lines[:first] + new + lines[last + 1 :])
    if line is None:
        return text
    for key_node, value_node in root.value:
        if getattr(key_node, "value", None) == after:
            at = _last_line(value_node) + 1
            return "\n".join(lines[:at] + new + lines[at:])
    body = text if text.endswith("\n") or not text else text + "\n"
    return body + new[0] + "\n"
