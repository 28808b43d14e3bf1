"""The dependency graph of a deploy plan, built the way the Databricks CLI builds it, and its cycles.

``databricks bundle plan`` / ``deploy`` (the direct engine; Terraform's graph has the same
shape) turns a bundle into nodes and edges before it contacts a workspace:

- a node per resource ``resources.<type>.<key>``, plus ``resources.<type>.<key>.permissions``
  and ``resources.<type>.<key>.grants`` when the resource has non-empty permissions or
  grants: an ACL is a separate node that needs its parent's id, so it depends on the parent;
- every ``${resources.<type>.<key>...}`` in a node's own fields is an edge from that node to
  the node the reference names (``....permissions[0]...`` names the permissions node,
  ``....grants[...]`` the grants node, anything else the resource), even when the value is
  already known from the configuration (a name written in the YAML);
- any cycle stops plan and deploy with ``cycle detected``; ``bundle validate`` does not look.

So ``${resources.apps.x.service_principal_client_id}`` in a job's ``permissions`` is an edge of
the job's permissions node, not of the job, and an app that names the job's id makes no cycle
with it; the same reference in a task parameter does.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from healthcare_mlops.bundle.interpolation import references

ACL_FIELDS = ("permissions", "grants")     # the parts of a resource the plan makes separate nodes


@dataclass(frozen=True)
class Edge:
    """``source`` needs ``target`` first, because of ``label`` (the ``${...}`` text) found at ``path``."""

    source: str
    target: str
    label: str
    path: str


def node_of(reference: str) -> str | None:
    """The plan node a ``resources...`` reference names, or None for any other reference."""
    parts = re.findall(r"[^.\[\]]+|\[\d+\]", reference)
    if len(parts) < 3 or parts[0] != "resources":
        return None
    node = f"resources.{parts[1]}.{parts[2]}"
    return f"{node}.{parts[3]}" if len(parts) > 3 and parts[3] in ACL_FIELDS else node


def plan_nodes_and_edges(document: dict) -> tuple[list[str], list[Edge]]:
    """Every node of the plan (sorted, as the CLI sorts them) and every edge between them."""
    nodes: list[str] = []
    edges: list[Edge] = []
    for rtype, group in (document.get("resources") or {}).items():
        for key, definition in (group or {}).items() if isinstance(group, dict) else []:
            if not isinstance(definition, dict):
                continue
            node = f"resources.{rtype}.{key}"
            nodes.append(node)
            own = {k: v for k, v in definition.items() if k not in ACL_FIELDS}
            edges.extend(_edges(node, own, node))
            for acl in ACL_FIELDS:
                if definition.get(acl):
                    acl_node = f"{node}.{acl}"
                    nodes.append(acl_node)
                    edges.append(Edge(acl_node, node, f"${{{node}.id}}", acl_node))
                    edges.extend(_edges(acl_node, definition[acl], acl_node))
    return sorted(nodes), edges


def _edges(source: str, value, path: str) -> list[Edge]:
    found = []
    for ref_path, reference in references(value, path):
        target = node_of(reference)
        if target is not None:
            found.append(Edge(source, target, f"${{{reference}}}", ref_path))
    return found


def find_plan_cycle(nodes: list[str], edges: list[Edge]) -> list[Edge] | None:
    """The edges of one cycle (the first found visiting nodes in sorted order), or None."""
    outgoing: dict[str, list[Edge]] = {node: [] for node in nodes}
    for edge in sorted(edges, key=lambda e: (e.target, e.label)):
        if edge.target in outgoing:      # an undeclared resource is reported elsewhere
            outgoing[edge.source].append(edge)
    state: dict[str, int] = {}           # 1: on the current path, 2: done
    path: list[Edge] = []

    def visit(node: str) -> list[Edge] | None:
        state[node] = 1
        for edge in outgoing[node]:
            if state.get(edge.target) == 1:
                start = next((i for i, e in enumerate(path) if e.source == edge.target), len(path))
                return [*path[start:], edge]
            if edge.target not in state:
                path.append(edge)
                found = visit(edge.target)
                if found:
                    return found
                path.pop()
        state[node] = 2
        return None

    for node in nodes:
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def _short(node: str) -> str:
    return node[len("resources."):]


def cycle_message(cycle: list[Edge]) -> str:
    """``cycle detected: a -> b -> a`` followed by the CLI's own wording of which reference makes each edge."""
    chain = " -> ".join([_short(cycle[0].source), *(_short(edge.target) for edge in cycle)])
    if len(cycle) == 1:
        how = f"{cycle[0].source} refers to itself via {cycle[0].label}"
    else:
        how = f"{cycle[0].source} refers to {cycle[0].target} via {cycle[0].label}" + "".join(
            f" which refers to {edge.target} via {edge.label}" for edge in cycle[1:])
    return (f"cycle detected: {chain} ({how}); `databricks bundle plan` and `deploy` stop here "
            f"although `bundle validate` passes")


def plan_problems(document: dict) -> list[tuple[str, str]]:
    """The cycle of the plan as (path of the reference that closes it, message), or nothing."""
    cycle = find_plan_cycle(*plan_nodes_and_edges(document))
    return [(cycle[-1].path, cycle_message(cycle))] if cycle else []
