"""Bacalhau's official Python SDK against a Shoal orchestrator.

Submits a job, lists jobs, describes it, reads its executions, and stops a second job, all
through `bacalhau-sdk` 1.4.2 / `bacalhau-apiclient` 1.4.1 unchanged. The orchestrator is found
through BACALHAU_API_HOST / BACALHAU_API_PORT, as the SDK documents.

Prints one JSON line with what it saw; exits non-zero (with the reason) on any mismatch.
"""

import json
import os
import sys
import tempfile
import time

# The SDK writes its config dir under BACALHAU_DIR (default ~/.bacalhau): keep it out of $HOME.
os.environ.setdefault("BACALHAU_DIR", tempfile.mkdtemp(prefix="shoal-sdk-"))

from bacalhau_apiclient.models.job import Job  # noqa: E402
from bacalhau_apiclient.models.task import Task  # noqa: E402
from bacalhau_apiclient.models.spec_config import SpecConfig  # noqa: E402
from bacalhau_apiclient.models.resources_config import ResourcesConfig  # noqa: E402
from bacalhau_apiclient.models.api_put_job_request import ApiPutJobRequest  # noqa: E402
from bacalhau_sdk.jobs import Jobs  # noqa: E402


def check(cond, what):
    if not cond:
        print(f"sdk test: {what}", file=sys.stderr)
        sys.exit(1)


def job(name, engine, params=None, queue_timeout=None, constraints=None):
    task = Task(
        name="main",
        engine=SpecConfig(type=engine, params=params or {}),
        resources=ResourcesConfig(cpu="100m", memory="64Mi"),
    )
    if queue_timeout is not None:
        from bacalhau_apiclient.models.timeout_config import TimeoutConfig

        task.timeouts = TimeoutConfig(queue_timeout=queue_timeout)
    return Job(
        name=name,
        type="batch",
        count=1,
        namespace="default",
        constraints=constraints or [],
        tasks=[task],
    )


def wait_state(jobs, job_id, states, limit=60):
    deadline = time.time() + limit
    while True:
        got = jobs.get(job_id)
        state = got.job.state.state_type
        if state in states:
            return got
        check(time.time() < deadline, f"job {job_id} stayed {state}, wanted one of {states}")
        time.sleep(0.1)


def main():
    jobs = Jobs()
    seen = {}

    put = jobs.put(ApiPutJobRequest(job=job("sdk-noop", "noop")))
    check(put.job_id, f"put returned no JobID: {put}")
    job_id = put.job_id
    seen["submitted"] = job_id

    done = wait_state(jobs, job_id, {"Completed", "Failed"})
    check(done.job.state.state_type == "Completed", f"noop job ended {done.job.state}")
    seen["state"] = done.job.state.state_type

    listed = jobs.list(limit=10)
    ids = [j.id for j in listed.items]
    check(job_id in ids, f"list did not contain {job_id}: {ids}")
    seen["listed"] = len(ids)

    described = jobs.get(job_id, include="executions,history")
    check(described.job.id == job_id, "get returned another job")
    check(described.job.name == "sdk-noop", f"name {described.job.name}")
    check(described.job.tasks[0].engine.type == "noop", "engine type lost")
    seen["described"] = described.job.name

    execs = jobs.executions(job_id)
    check(len(execs.items) == 1, f"{len(execs.items)} executions")
    e = execs.items[0]
    check(e.job_id == job_id, "execution of another job")
    check(e.node_id, "execution without a node")
    # Execution states travel as Bacalhau's integer enum: 9 is Completed.
    check(e.compute_state.state_type == 9, f"execution state {e.compute_state}")
    seen["execution_node"] = e.node_id

    history = jobs.history(job_id, event_type="")
    check(len(history.items) >= 2, f"history has {len(history.items)} events")
    seen["history"] = len(history.items)

    # A job that waits for a node that does not exist, so it can be stopped while active.
    waiting = jobs.put(
        ApiPutJobRequest(
            job=job(
                "sdk-waits",
                "noop",
                queue_timeout=600,
                constraints=[{"Key": "no-such-label", "Operator": "exists", "Values": []}],
            )
        )
    )
    wait_state(jobs, waiting.job_id, {"Pending", "Queued"})
    stopped = jobs.stop(waiting.job_id, reason="stopped by the sdk test")
    check(stopped.evaluation_id is not None, f"stop answer {stopped}")
    final = wait_state(jobs, waiting.job_id, {"Stopped"})
    seen["stopped"] = final.job.state.state_type

    print(json.dumps(seen))


if __name__ == "__main__":
    main()
