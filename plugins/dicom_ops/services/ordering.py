"""The order a service's jobs run in for one item: pre-services first, then the normal
jobs, then post-services; within each, every job after the jobs it ``dependsOn``, and
otherwise by ``sortPosition`` (then as written).

dcm-processor silently drops a job whose dependencies cannot be met within its group;
here each such case is a problem naming the job and the key: an unknown or disabled
dependency, one that does not start on the same event, one that would run later (a pre
job depending on a normal one), and a cycle (with its path).
"""

from __future__ import annotations

from collections.abc import Sequence

from dicom_ops.services.definition import JobDefinition, JobKind

KIND_RANK = {JobKind.PRE: 0, JobKind.NORMAL: 1, JobKind.POST: 2}


def run_order(jobs: Sequence[JobDefinition]) -> tuple[list[JobDefinition], list[str]]:
    """``jobs`` in run order, and the problems that stop them from running in any."""
    by_name = {job.job_name: job for job in jobs}
    problems = [problem for job in jobs for problem in _dependency_problems(job, by_name)]
    if problems:
        return list(jobs), problems
    cycle = _find_cycle(jobs, by_name)
    if cycle:
        return list(jobs), [f"job {cycle[0]!r}: dependsOn: a cycle: {' -> '.join(cycle)}"]
    position = {job.job_name: index for index, job in enumerate(jobs)}
    done: set[str] = set()
    ordered: list[JobDefinition] = []
    waiting = list(jobs)
    while waiting:
        ready = [job for job in waiting if set(job.depends_on) <= done]
        nxt = min(ready, key=lambda j: (KIND_RANK[j.kind], j.sort_position,
                                        position[j.job_name]))
        ordered.append(nxt)
        done.add(nxt.job_name)
        waiting.remove(nxt)
    return ordered, []


def _dependency_problems(job: JobDefinition, by_name: dict[str, JobDefinition]) -> list[str]:
    label = f"job {job.job_name!r}"
    problems = []
    for name in job.depends_on:
        other = by_name.get(name)
        if other is None:
            problems.append(f"{label}: dependsOn: unknown job {name!r} (jobs: "
                            f"{', '.join(sorted(by_name))})")
        elif name == job.job_name:
            problems.append(f"{label}: dependsOn: a job cannot depend on itself")
        elif other.disabled and not job.disabled:
            problems.append(f"{label}: dependsOn: job {name!r} is disabled, so this job "
                            "would never run")
        elif missing := [e.value for e in job.events if e not in other.events]:
            problems.append(f"{label}: dependsOn: job {name!r} does not start on "
                            f"{', '.join(missing)}, so this job would never run on it")
        elif KIND_RANK[other.kind] > KIND_RANK[job.kind]:
            problems.append(f"{label}: dependsOn: job {name!r} is a {other.kind.value} job, "
                            f"which runs after {job.kind.value} jobs")
    return problems


def _find_cycle(jobs: Sequence[JobDefinition], by_name: dict[str, JobDefinition]
                ) -> list[str] | None:
    """One dependency cycle as a path of job names (first = last), or None."""
    state: dict[str, str] = {}  # "visiting" / "done"

    def visit(name: str, path: list[str]) -> list[str] | None:
        state[name] = "visiting"
        for dep in by_name[name].depends_on:
            if state.get(dep) == "visiting":
                return [*path[path.index(dep):], dep] if dep in path else [name, dep]
            if dep not in state and (found := visit(dep, [*path, dep])):
                return found
        state[name] = "done"
        return None

    for job in jobs:
        if job.job_name not in state and (cycle := visit(job.job_name, [job.job_name])):
            return cycle
    return None
