"""YAML read as a node tree, so every value keeps the line it was written on.

`yaml.safe_load` forgets where things were; an admin told "bad value" without a
line number has to hunt for it. Composing the node tree keeps the marks, and the
validator reports each problem with the line of the node at fault. Anchors and
aliases are refused: a few nested aliases can expand to billions of nodes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml

MAX_FILE_BYTES = 1 << 20
MAX_NODES = 100_000


@dataclass(frozen=True, order=True)
class RuleError:
    """One problem in a rule file: 1-based line and a plain explanation."""

    line: int
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}"


@dataclass
class Problems:
    """Collects every problem instead of stopping at the first."""

    errors: list[RuleError] = field(default_factory=list)

    def add(self, node: yaml.Node | None, message: str) -> None:
        self.errors.append(RuleError(line_of(node), message))

    def __bool__(self) -> bool:
        return bool(self.errors)


def line_of(node: yaml.Node | None) -> int:
    return node.start_mark.line + 1 if node is not None and node.start_mark else 1


_SCALAR_READER = yaml.SafeLoader("")


def value_of(node: yaml.ScalarNode) -> Any:
    """The Python value of a scalar (str, int, float, bool or None), as YAML types it."""
    return _SCALAR_READER.construct_object(node, deep=True)


class ParseFailure(Exception):
    def __init__(self, error: RuleError) -> None:
        super().__init__(str(error))
        self.error = error


def compose(text: str) -> yaml.Node | None:
    """The document's root node, or ParseFailure with the line of the syntax error."""
    if len(text.encode("utf-8", "surrogatepass")) > MAX_FILE_BYTES:
        raise ParseFailure(RuleError(1, f"the file is larger than {MAX_FILE_BYTES} bytes"))
    try:
        for event in yaml.parse(text, Loader=yaml.SafeLoader):
            if isinstance(event, yaml.AliasEvent):
                raise ParseFailure(
                    RuleError(
                        (event.start_mark.line + 1) if event.start_mark else 1,
                        "anchors and aliases (& and *) are not supported",
                    )
                )
        nodes = list(yaml.compose_all(text, Loader=yaml.SafeLoader))
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 1
        what = exc.problem or exc.context or "not valid YAML"
        raise ParseFailure(RuleError(line, f"not valid YAML: {what}")) from None
    except yaml.YAMLError as exc:
        raise ParseFailure(RuleError(1, f"not valid YAML: {exc}")) from None
    if len(nodes) > 1:
        raise ParseFailure(
            RuleError(line_of(nodes[1]), "the file holds more than one YAML document (---)")
        )
    root = nodes[0] if nodes else None
    if root is not None:
        _check_tree(root)
    return root


def _check_tree(root: yaml.Node) -> None:
    """Refuse aliases (a node seen twice) and absurdly large trees."""
    seen: set[int] = set()
    stack = [root]
    while stack:
        node = stack.pop()
        if id(node) in seen:
            raise ParseFailure(
                RuleError(line_of(node), "anchors and aliases (& and *) are not supported")
            )
        seen.add(id(node))
        if len(seen) > MAX_NODES:
            raise ParseFailure(RuleError(line_of(node), "the file has too many values"))
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                stack.extend((key, value))
        elif isinstance(node, yaml.SequenceNode):
            stack.extend(node.value)
        if node.tag not in _PLAIN_TAGS:
            raise ParseFailure(RuleError(line_of(node), f"YAML tag {node.tag} is not supported"))


_PLAIN_TAGS = frozenset(
    "tag:yaml.org,2002:" + t for t in ("str", "int", "float", "bool", "null", "map", "seq")
)


def kind_name(node: yaml.Node) -> str:
    """How an admin would call what they wrote."""
    if isinstance(node, yaml.MappingNode):
        return "a mapping"
    if isinstance(node, yaml.SequenceNode):
        return "a list"
    assert isinstance(node, yaml.ScalarNode)
    value = value_of(node)
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return f"{str(value).lower()} (yes/no)"
    if isinstance(value, int | float):
        return f"the number {value}"
    return f"the text {value!r}"


def items(node: yaml.Node, problems: Problems, what: str) -> list[tuple[str, yaml.Node, yaml.Node]]:
    """(key, key node, value node) of a mapping; None and duplicates reported."""
    if not isinstance(node, yaml.MappingNode):
        problems.add(node, f"{what} must be a mapping (key: value), not {kind_name(node)}")
        return []
    out = []
    seen: dict[str, int] = {}
    for key_node, value_node in node.value:
        key = value_of(key_node) if isinstance(key_node, yaml.ScalarNode) else None
        if not isinstance(key, str):
            problems.add(key_node, f"keys in {what} must be words, not {kind_name(key_node)}")
            continue
        if key in seen:
            problems.add(key_node, f"{key!r} appears twice in {what} (first on line {seen[key]})")
            continue
        seen[key] = line_of(key_node)
        out.append((key, key_node, value_node))
    return out
