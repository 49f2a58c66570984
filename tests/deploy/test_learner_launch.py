"""The learner is a training run: a Job (one node) or a JobSet (several nodes) launched by
torchrun, never a Deployment; the rendered torchrun lines really start the ranks they promise
(torch's own torchrun, on CPU, with a probe module in place of the learner)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from deploy_util import (
    INSTALL_VALUES,
    VALUES_FILES,
    by_kind,
    component,
    container,
    env_of,
    helm,
    load_compose,
    merge,
    pod_spec,
    pod_template,
    render,
    render_file,
    validate,
    values_file,
    workloads,
)

from paretopo.datasets.registry import ENV_DATA_DIR
from paretopo.netutil import free_port

per_file = pytest.mark.parametrize("values_name", VALUES_FILES)
PROBE_DIR = Path(__file__).resolve().parent
LEARNER_TAIL = ["-m", "services.learner", "--config", "/config/run.yaml"]


def values_of(values_name: str, extra: dict | None = None) -> dict:
    return merge(merge(values_file("values.yaml"), values_file(values_name)), extra or {})


def render_with(values_name: str, extra: dict) -> list[dict]:
    return render(merge(merge(values_file(values_name), INSTALL_VALUES), extra))


def flags(command: list[str]) -> dict[str, str]:
    assert command[0] == "torchrun"
    head = command[1:command.index("-m")]
    return dict(f[2:].split("=", 1) if "=" in f else (f[2:], "") for f in head)


def failure_rules(job_spec: dict) -> list[dict]:
    return job_spec["podFailurePolicy"]["rules"]


@per_file
def test_learner_is_one_job_not_a_deployment(values_name: str) -> None:
    objects = render_file(values_name)
    values = values_of(values_name)["learner"]
    deployments = by_kind(objects, "Deployment").values()
    assert "learner" not in {component(d) for d in deployments}
    (job,) = by_kind(objects, "Job").values()
    assert workloads(objects)["learner"] is job and not by_kind(objects, "JobSet")
    spec = job["spec"]
    assert spec["backoffLimit"] == values["backoffLimit"] >= 1
    assert (spec["completions"], spec["parallelism"], spec["completionMode"]) == (1, 1, "Indexed")
    pod = pod_spec(job)
    assert pod["restartPolicy"] == "Never"  # retries are new pods, counted by backoffLimit
    rules = failure_rules(spec)
    # A bad run configuration fails at once; evictions are retried without counting.
    assert {"action": "FailJob", "onExitCodes": {"containerName": "check-config",
                                                 "operator": "In", "values": [2]}} in rules
    assert {"action": "Ignore",
            "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]} in rules
    check = next(c for c in pod["initContainers"] if c["name"] == "check-config")
    assert check["command"][-3:] == ["--config", "/config/run.yaml", "--dry-run"]
    main = container(job, "learner")
    assert env_of(check) == env_of(main)  # the check sees what the run will see
    opts = flags(main["command"])
    assert main["command"][main["command"].index("-m"):] == LEARNER_TAIL
    assert "standalone" in opts and opts["nnodes"] == "1"
    assert int(opts["nproc-per-node"]) == max(1, values["gpu"]["count"])
    grace = pod["terminationGracePeriodSeconds"]
    assert grace == values["terminationGracePeriodSeconds"]
    assert 0 < int(opts["shutdown-timeout"]) < grace  # the kubelet kills only after torchrun
    # Every attempt resumes from the checkpoint: the data volume is mounted read-write.
    mounts = {m["mountPath"]: m for m in main["volumeMounts"]}
    assert not mounts["/data"].get("readOnly")
    claim = next(v for v in pod["volumes"] if v["name"] == mounts["/data"]["name"])
    claims = set(by_kind(objects, "PersistentVolumeClaim"))
    claims.add(values_of(values_name)["data"].get("existingClaim", ""))
    assert claim["persistentVolumeClaim"]["claimName"] in claims
    # The evaluation sets are read by name from the shared data directory on that volume.
    assert env_of(main)[ENV_DATA_DIR] == values["sharedDataDir"]
    assert values["sharedDataDir"].startswith("/data/")


def test_several_nodes_make_a_jobset_with_a_static_rendezvous_at_node_0() -> None:
    objects = render_with("values-large.yaml", {"learner": {"nodes": 3}})
    values = values_of("values-large.yaml", {"learner": {"nodes": 3}})["learner"]
    assert not by_kind(objects, "Job")
    (jobset,) = by_kind(objects, "JobSet").values()
    validate(jobset)
    name = jobset["metadata"]["name"]
    spec = jobset["spec"]
    assert spec["network"]["enableDNSHostnames"] is True
    assert spec["network"].get("subdomain", name) == name
    assert spec["failurePolicy"]["maxRestarts"] == values["backoffLimit"]
    assert {"name": "bad-run-config", "action": "FailJobSet",
            "onJobFailureReasons": ["PodFailurePolicy"]} in spec["failurePolicy"]["rules"]
    (rjob,) = spec["replicatedJobs"]
    assert rjob["replicas"] == 1
    job = rjob["template"]["spec"]
    assert (job["completions"], job["parallelism"], job["completionMode"]) == (3, 3, "Indexed")
    assert job["backoffLimit"] == 0  # one lost node restarts the whole gang
    main = container(jobset, "learner")
    opts = flags(main["command"])
    assert opts["nnodes"] == "3" and "standalone" not in opts
    assert int(opts["nproc-per-node"]) == values["gpu"]["count"] == 8
    # Pod <jobset>-<replicatedJob>-<job index>-<completion index>, resolvable under the
    # JobSet's headless Service (its subdomain): node 0 of job 0.
    assert opts["master-addr"] == f"{name}-{rjob['name']}-0-0.{name}"
    assert opts["master-port"] == str(values["rendezvousPort"])
    assert opts["node-rank"] == "$(TORCHRUN_NODE_RANK)"
    assert env_of(main)["TORCHRUN_NODE_RANK"] == {"fieldRef": {
        "fieldPath": "metadata.annotations['batch.kubernetes.io/job-completion-index']"}}
    # Only node 0 (rank 0) serves /healthz and /metrics: the Service selects it alone, and the
    # other nodes' probes pass without it.
    service = by_kind(objects, "Service")[name]
    assert service["spec"]["selector"]["batch.kubernetes.io/job-completion-index"] == "0"
    probe = " ".join(main["livenessProbe"]["exec"]["command"])
    assert '"$TORCHRUN_NODE_RANK" != 0' in probe and "/healthz" in probe
    assert pod_template(jobset)["spec"]["restartPolicy"] == "Never"


def test_too_long_release_names_fail_before_the_jobset_controller_would() -> None:
    with pytest.raises(helm().HelmError, match="longer than 63"):
        render(merge(INSTALL_VALUES, {"learner": {"nodes": 2}}),
               name="a-release-name-far-too-long-for-pod-hostnames")


def run_torchrun(command: list[str], out: Path, env: dict[str, str] | None = None,
                 ) -> subprocess.Popen[str]:
    """Start a rendered torchrun line with the probe module in place of the learner."""
    tail = command.index("-m")
    assert command[tail:] == LEARNER_TAIL
    argv = [str(Path(sys.executable).parent / "torchrun"), *command[1:tail],
            "-m", "rank_probe", *LEARNER_TAIL[2:]]
    full_env = {**os.environ, "PYTHONPATH": str(PROBE_DIR), "RANK_PROBE_DIR": str(out),
                "OMP_NUM_THREADS": "1", **(env or {})}
    return subprocess.Popen(argv, cwd=out, env=full_env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def ranks(out: Path) -> dict[int, dict]:
    return {int(p.stem): json.loads(p.read_text()) for p in out.glob("*.json")}


def finish(proc: subprocess.Popen[str]) -> None:
    try:
        output, _ = proc.communicate(timeout=180)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, output


@pytest.mark.parametrize("source", ["chart", "compose learner-gpu4-7"])
def test_single_node_torchrun_lines_start_one_process_per_gpu(source: str,
                                                               tmp_path: Path) -> None:
    if source == "chart":
        job = workloads(render_with("values.yaml", {"learner": {"gpu": {"count": 2}}}))
        command = container(job["learner"])["command"]
    else:
        command = load_compose()["services"]["learner-gpu4-7"]["command"]
    nproc = int(flags(command)["nproc-per-node"])
    finish(run_torchrun(command, tmp_path))
    found = ranks(tmp_path)
    assert sorted(found) == list(range(nproc))
    for rank, env in found.items():
        assert env["WORLD_SIZE"] == str(nproc) and env["LOCAL_RANK"] == str(rank)
        assert env["argv"] == ["--config", "/config/run.yaml"]


def test_jobset_torchrun_line_rendezvous_across_two_nodes(tmp_path: Path) -> None:
    objects = render_with("values.yaml", {"learner": {"nodes": 2, "gpu": {"count": 1}}})
    (jobset,) = by_kind(objects, "JobSet").values()
    command = container(jobset, "learner")["command"]
    port = free_port()
    procs = []
    for node in (1, 0):  # node 1 first: it must wait for node 0's store
        # What Kubernetes does: $(TORCHRUN_NODE_RANK) from the completion index; here the
        # pod's DNS name is replaced by the loopback address.
        line = [a.replace("$(TORCHRUN_NODE_RANK)", str(node)) for a in command]
        line = ["--master-addr=127.0.0.1" if a.startswith("--master-addr=") else
                f"--master-port={port}" if a.startswith("--master-port=") else a for a in line]
        out = tmp_path / f"node{node}"
        out.mkdir()
        procs.append((node, out, run_torchrun(line, out)))
    for _, _, proc in procs:
        finish(proc)
    by_node = {node: ranks(out) for node, out, _ in procs}
    # Global rank 0, the one that talks to Redis and the archive, is on node 0.
    assert sorted(by_node[0]) == [0] and sorted(by_node[1]) == [1]
    assert all(r["WORLD_SIZE"] == "2" for n in by_node.values() for r in n.values())
    assert by_node[1][1]["GROUP_RANK"] == "1"
