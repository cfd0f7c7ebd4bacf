"""Limits on parsed request bodies that protect the recursive code behind them.

The HTTP layer enforces the body size; :func:`check_depth` bounds JSON nesting so that neither the
structure validator nor anything else that walks a resource can hit Python's recursion limit.
"""

from __future__ import annotations

from fhir_server.outcome import FhirError


def check_depth(value: object, max_depth: int) -> None:
    """Raise ``FhirError(400)`` when ``value`` nests objects/arrays more than ``max_depth`` levels deep.

    A scalar has depth 0, ``{}`` / ``[]`` depth 1, ``{"a": [1]}`` depth 2, and so on. Iterative (an explicit
    stack), so arbitrarily deep input cannot crash it.
    """
    if max_depth < 0:
        raise ValueError("max_depth must be >= 0")
    stack: list[tuple[object, int]] = [(value, 0)]
    pop, push = stack.pop, stack.append
    while stack:
        node, depth = pop()
        if isinstance(node, dict):
            children = node.values()
        elif isinstance(node, list):
            children = node
        else:
            continue
        depth += 1
        if depth > max_depth:
            raise FhirError.of(400, "too-long", f"JSON nesting is deeper than the allowed {max_depth} levels")
        for child in children:
            if isinstance(child, (dict, list)):
                push((child, depth))
