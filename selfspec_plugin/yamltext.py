"""Small edits of a YAML file's own text: values set, keys added after another, keys commented out, the rest
(comments, order, layout) left as written. PyYAML re-dumps drop every comment, and a recipe's comments say why
each setting is what it is (the shipped recipes are mostly comments), so `selfspec recipe pack` edits the text.

Only block-style mappings are edited; `edit` returns None for anything else (the caller then re-dumps), and the
caller checks that the edited text loads as the data it meant.
"""

from __future__ import annotations

from typing import Any, Optional


def flow(value: Any) -> str:
    """A value as one line of YAML (plain where YAML reads it back unchanged, quoted where not)."""
    import yaml

    return yaml.safe_dump([value], default_flow_style=True, width=1 << 20, sort_keys=False).strip()[1:-1]


def _child(node, key):
    """The value node of `key` in a mapping node, or item `key` of a sequence node; None if there is none."""
    import yaml

    if isinstance(node, yaml.MappingNode):
        return next((v for k, v in node.value if isinstance(k, yaml.ScalarNode) and k.value == key), None)
    if isinstance(node, yaml.SequenceNode) and isinstance(key, int) and key < len(node.value):
        return node.value[key]
    return None


def _node_at(root, keys: tuple) -> Any:
    for key in keys:
        root = _child(root, key) if root is not None else None
    return root


def _end(node) -> int:
    """Where a node's text ends (a block collection ends where its last item does, not at the next token)."""
    import yaml

    if isinstance(node, (yaml.SequenceNode, yaml.MappingNode)) and not node.flow_style and node.value:
        last = node.value[-1]
        return _end(last[1] if isinstance(last, tuple) else last)
    return node.end_mark.index


def _line_end(text: str, index: int) -> int:
    found = text.find("\n", index)
    return len(text) if found < 0 else found


def _line_start(text: str, index: int) -> int:
    return text.rfind("\n", 0, index) + 1


def edit(text: str, changes: list[tuple[tuple, Any, Optional[str]]], drop: list[tuple[str, ...]]) -> Optional[str]:
    """`text` with each (key path, value, after) of `changes` set (an absent key is added on the line after the key
    `after` of the same block mapping) and each key path of `drop` commented out; None where the layout is not one
    this edits (a block collection to replace, a key to add to a flow mapping)."""
    import yaml

    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        return None
    edits: list[tuple[int, int, str]] = []  # (start, end, replacement), applied from the end
    for keys, value, after in changes:
        parent, node = _node_at(root, keys[:-1]), _node_at(root, keys)
        if node is not None:
            if not isinstance(node, yaml.ScalarNode) and not node.flow_style:
                return None
            edits.append((node.start_mark.index, node.end_mark.index, flow(value)))
            continue
        anchor = _child(parent, after) if isinstance(parent, yaml.MappingNode) and not parent.flow_style else None
        if anchor is None:
            return None
        key_node = next(k for k, v in parent.value if v is anchor)
        at = _line_end(text, _end(anchor))
        edits.append((at, at, f"\n{' ' * key_node.start_mark.column}{keys[-1]}: {flow(value)}"))
    for keys in drop:
        parent, node = _node_at(root, keys[:-1]), _node_at(root, keys)
        if node is None or not isinstance(parent, yaml.MappingNode) or parent.flow_style:
            continue
        key_node = next(k for k, v in parent.value if v is node)
        at = _line_start(text, key_node.start_mark.index)
        while at < _end(node):  # every line of the key and its value
            edits.append((at, at, "# "))
            at = _line_end(text, at) + 1
    for start, end, new in sorted(edits, key=lambda e: (e[0], e[1]), reverse=True):
        text = text[:start] + new + text[end:]
    return text
