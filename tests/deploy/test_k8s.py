"""deploy/k8s/ checked on paper: every manifest parses, the Jobs have the shape the README
describes (an Indexed Job of workers with a per-index retry limit), every container command
parses with the real command line (as the docs' examples do), the Dockerfile puts the study
files where the commands read them, and the Secret's storage URL reaches the containers only
through the environment and is never printed by the commands they run (run for real, in
order, on a fresh PostgreSQL database with the Secret's password in the URL)."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import typer
import yaml
from sqlalchemy.engine import make_url

from hpstudy.cli import app
from tests.conftest import tiny_study_text

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
MANIFESTS = sorted(K8S.glob("*.yaml"))
APP = "/app"  # the image's WORKDIR, where the Dockerfile copies the project's files


def _documents() -> list[tuple[str, dict[str, Any]]]:
    return [(p.name, d) for p in MANIFESTS for d in yaml.safe_load_all(p.read_text()) if d]


def _by_kind(kind: str) -> list[dict[str, Any]]:
    return [d for _, d in _documents() if d["kind"] == kind]


def _job(name: str) -> dict[str, Any]:
    (job,) = [d for d in _by_kind("Job") if d["metadata"]["name"] == name]
    return job


def _containers(job: dict[str, Any]) -> list[dict[str, Any]]:
    """Init containers first, in the order Kubernetes runs them."""
    pod = job["spec"]["template"]["spec"]
    return [*pod.get("initContainers", []), *pod["containers"]]


def _secret() -> tuple[str, str, str]:
    (secret,) = _by_kind("Secret")
    ((key, url),) = secret["stringData"].items()
    return secret["metadata"]["name"], key, url


JOBS = ("hpstudy-create", "hpstudy-workers", "hpstudy-finish")  # the order they are applied


def test_every_manifest_parses_and_names_its_object() -> None:
    assert {p.name for p in MANIFESTS} >= {
        "secret.yaml", "create-job.yaml", "workers-job.yaml", "finish-job.yaml", "reports-pvc.yaml",
    }  # fmt: skip
    for name, doc in _documents():
        assert {
            "apiVersion",
            "kind",
            "metadata",
            "spec" if doc["kind"] != "Secret" else "type",
        } <= set(doc), name
        assert re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", doc["metadata"]["name"]), name
    assert sorted(d["metadata"]["name"] for d in _by_kind("Job")) == sorted(JOBS)


def test_workers_are_an_indexed_job_retried_per_index() -> None:
    spec = _job("hpstudy-workers")["spec"]
    assert spec["completionMode"] == "Indexed"
    assert spec["parallelism"] >= 1 and spec["completions"] >= spec["parallelism"]
    assert spec["backoffLimitPerIndex"] >= 1
    assert "backoffLimit" not in spec  # per index, not for the whole Job
    pod = spec["template"]["spec"]
    assert pod["restartPolicy"] == "Never"  # required by backoffLimitPerIndex
    names = {c["name"] for c in pod["containers"]}
    for rule in spec["podFailurePolicy"]["rules"]:
        if "onExitCodes" in rule:
            assert rule["onExitCodes"]["containerName"] in names
            assert rule["onExitCodes"]["values"] == [2]  # usage/config error: retrying cannot help
    # SIGTERM: the worker records and re-queues its trial; it needs the time to do so
    assert pod["terminationGracePeriodSeconds"] >= 30


def _commands() -> list[tuple[str, list[str]]]:
    return [
        (job, c["command"] + c.get("args", [])) for job in JOBS for c in _containers(_job(job))
    ]


@pytest.mark.parametrize(
    ("job", "argv"), _commands(), ids=lambda v: v if isinstance(v, str) else " ".join(v)
)
def test_every_container_command_parses_with_the_real_command_line(
    job: str, argv: list[str]
) -> None:
    assert argv[0] == "hpstudy", argv
    args = argv[1:]
    while args and args[0] in ("-q", "--quiet", "-v", "--verbose", "--debug"):
        args.pop(0)
    group = typer.main.get_command(app)
    commands = getattr(group, "commands", {})
    assert args and args[0] in commands, f"{job}: {argv} names no hpstudy command"
    commands[args[0]].make_context(args[0], args[1:])  # raises a UsageError if it does not parse
    assert "--storage" not in argv  # the URL comes from the Secret, never a command line


def test_the_jobs_run_one_experiment_in_order() -> None:
    create, workers, finish = ([c["command"] for c in _containers(_job(j))] for j in JOBS)
    (create_cmd,) = create
    study = ROOT / create_cmd[create_cmd.index("create") + 1].removeprefix(APP + "/")
    assert study.is_file(), study  # the image holds it: see the Dockerfile test
    name = re.search(r'^name = "([^"]+)"', study.read_text(), re.M)
    assert name and "--no-run" in create_cmd
    experiment = name.group(1)
    assert [c[2:] for c in workers] == [["worker", experiment]]
    assert [c[2:4] for c in finish] == [["resume", experiment], ["report", experiment]]
    report = finish[1][finish[1].index("--output") + 1]
    mounts = _containers(_job("hpstudy-finish"))[1]["volumeMounts"]
    assert any(report.startswith(m["mountPath"] + "/") for m in mounts)
    volumes = _job("hpstudy-finish")["spec"]["template"]["spec"]["volumes"]
    claims = {v["persistentVolumeClaim"]["claimName"] for v in volumes}
    assert claims <= {d["metadata"]["name"] for d in _by_kind("PersistentVolumeClaim")}


def test_the_secret_reaches_every_container_only_through_its_environment() -> None:
    name, key, url = _secret()
    assert make_url(url).drivername == "postgresql" and make_url(url).password
    for job in JOBS:
        for container in _containers(_job(job)):
            env = {e["name"]: e for e in container["env"]}
            ref = env["HPSTUDY_STORAGE"]["valueFrom"]["secretKeyRef"]
            assert (ref["name"], ref["key"]) == (name, key), (job, container["name"])
    for path in MANIFESTS:
        if path.name != "secret.yaml":
            assert "://" not in path.read_text(), path.name  # no URL written anywhere else


def test_the_dockerfile_copies_what_the_commands_read() -> None:
    text = (ROOT / "Dockerfile").read_text()
    assert re.search(rf"^WORKDIR {APP}$", text, re.M)
    for sources in re.findall(r"^COPY (.+) \S+$", text, re.M):
        for source in sources.split():
            assert (ROOT / source).exists(), source
    assert re.search(r"^COPY studies/ studies/$", text, re.M)
    assert "-c constraints.txt" in text and "[postgres]" in text
    assert "download.pytorch.org/whl/cpu" in text  # never a CUDA build on CPU nodes
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert ".venv" in ignored and "storage" in ignored  # no local database in the image


@pytest.mark.slow
def test_the_jobs_commands_run_in_order_without_printing_the_secret(
    tmp_path: Path, postgres_url: str
) -> None:
    """Each container command, for real and in the Jobs' order (create, worker, resume,
    report), on a fresh database whose URL carries the Secret's password (the test server
    trusts local connections and ignores it); the study file at the image's path is a tiny
    one with the experiment's name. Nothing any of them prints holds the password."""
    _, _, secret_url = _secret()
    password = make_url(secret_url).password
    assert password
    test = make_url(postgres_url)
    url = test.set(password=password).render_as_string(hide_password=False)
    experiment = "quickstart"
    study = tmp_path / "app" / "studies" / "quickstart.toml"
    study.parent.mkdir(parents=True)
    text = tiny_study_text(strategies=("random",), n_trials=2)
    study.write_text(text.replace('name = "tiny"', f'name = "{experiment}"'))
    (tmp_path / "reports").mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("HPSTUDY_")}
    env["HPSTUDY_STORAGE"] = url
    printed = ""
    for job, argv in _commands():
        argv = [
            a.replace(APP + "/", f"{tmp_path}/app/").replace("/reports/", f"{tmp_path}/reports/")
            for a in argv
        ]
        done = subprocess.run(
            [sys.executable, "-m", "hpstudy", *argv[1:]],
            capture_output=True, text=True, env=env, cwd=tmp_path, timeout=600,
        )  # fmt: skip
        assert done.returncode == 0, (job, shlex.join(argv), done.stderr)
        printed += done.stdout + done.stderr
    assert (tmp_path / "reports" / f"{experiment}.html").stat().st_size > 10_000
    assert "finished" in printed or "report" in printed  # they did print something
    assert password not in printed


def test_every_pod_runs_as_the_images_user() -> None:
    """Not root, and the user the Dockerfile makes (fsGroup: it can write the reports
    volume)."""
    text = (ROOT / "Dockerfile").read_text()
    uid = re.search(r"--uid (\d+)", text)
    assert uid and re.search(rf"^USER {uid.group(1)}$", text, re.M)
    for job in JOBS:
        context = _job(job)["spec"]["template"]["spec"]["securityContext"]
        assert context["runAsNonRoot"] is True
        assert context["runAsUser"] == context["fsGroup"] == int(uid.group(1)), job
