"""A job's tasks as a graph: ``depends_on`` edges, cycle detection and a stable run order."""

from __future__ import annotations

from healthcare_mlops.errors import UserError


class CycleError(UserError):
    """The tasks' ``depends_on`` form a cycle; ``cycle`` lists it, first task repeated at the end."""

    def __init__(self, job_key: str, cycle: list[str]):
        self.job_key = job_key
        self.cycle = cycle
        super().__init__(f"the tasks of job '{job_key}' form a cycle: {' -> '.join(cycle)}")


def dependencies(task: dict) -> list[str]:
    """The task keys a task depends on (``depends_on: [{task_key: ...}]``)."""
    keys = []
    for entry in task.get("depends_on") or []:
        if isinstance(entry, dict) and entry.get("task_key") is not None:
            keys.append(str(entry["task_key"]))
    return keys


def task_graph(tasks: list) -> dict[str, list[str]]:
    """task_key -> the task keys it depends on, in declaration order."""
    return {str(task.get("task_key")): dependencies(task) for task in tasks if isinstance(task, dict)}


def find_cycle(graph: dict[str, list[str]]) -> list[str] | None:
    """One cycle of the graph (edges to unknown nodes ignored), or None when it is a DAG."""
    state: dict[str, int] = {}     # 1 = on the current path, 2 = done
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for upstream in graph.get(node, []):
            if upstream not in graph:
                continue
            if state.get(upstream) == 1:
                return stack[stack.index(upstream):] + [upstream]
            if state.get(upstream) is None:
                found = visit(upstream)
                if found:
                    return found
        stack.pop()
        state[node] = 2
        return None

    for node in graph:
        if state.get(node) is None:
            found = visit(node)
            if found:
                # report the cycle in the direction the work flows (upstream first)
                return list(reversed(found))
    return None


def run_order(job_key: str, tasks: list) -> list[str]:
    """Task keys in an order where every task comes after the tasks it depends on.

    Among the tasks that are ready, the one declared first runs first, so the order is
    stable. A cycle is a ``CycleError``; a dependency on an unknown task a ``UserError``.
    """
    graph = task_graph(tasks)
    for key, upstream in graph.items():
        for name in upstream:
            if name not in graph:
                raise UserError(f"task '{key}' of job '{job_key}' depends on '{name}', "
                                f"which is not a task of job '{job_key}'")
    cycle = find_cycle(graph)
    if cycle:
        raise CycleError(job_key, cycle)
    done: set[str] = set()
    order: list[str] = []
    while len(order) < len(graph):
        for key, upstream in graph.items():
            if key not in done and all(name in done for name in upstream):
                order.append(key)
                done.add(key)
                break
    return order
