"""`prefect.yaml` checked without a server: entrypoints resolve, parameters exist, steps import.

The slow deployment tests deploy it for real; this catches a renamed flow or parameter in a second.
"""

from __future__ import annotations

import ast
import importlib
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def config() -> dict[str, Any]:
    loaded = yaml.safe_load((ROOT / "prefect.yaml").read_text())
    assert isinstance(loaded, dict)
    return loaded


def _flow_parameters(entrypoint: str) -> tuple[str, set[str], set[str]]:
    """(flow name, parameters, required parameters) read from the source, without importing."""
    path, _, func = entrypoint.partition(":")
    tree = ast.parse((ROOT / path).read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.AsyncFunctionDef | ast.FunctionDef) and node.name == func:
            args = [*node.args.args, *node.args.kwonlyargs]
            names = {a.arg for a in args}
            required = {
                a.arg for a in node.args.args[: len(node.args.args) - len(node.args.defaults)]
            }
            flow = next(
                kw.value.value
                for d in node.decorator_list
                if isinstance(d, ast.Call)
                for kw in d.keywords
                if kw.arg == "name" and isinstance(kw.value, ast.Constant)
            )
            return str(flow), names, required
    raise AssertionError(f"{entrypoint}: no function {func}")


def test_two_deployments_on_the_process_pool(config: dict[str, Any]) -> None:
    deployments = {d["name"]: d for d in config["deployments"]}
    assert set(deployments) == {"bulk-import", "reconcile-nightly"}
    for d in deployments.values():
        assert d["work_pool"]["name"] == "callerid-process"
    assert "schedules" not in deployments["bulk-import"]  # on demand
    (schedule,) = deployments["reconcile-nightly"]["schedules"]
    assert schedule["cron"] == "30 2 * * *" and schedule["active"] is True


@pytest.mark.parametrize(
    ("name", "flow", "required"),
    [("bulk-import", "bulk-verify", {"csv_path"}), ("reconcile-nightly", "reconcile", set())],
)
def test_entrypoints_and_parameters_match_the_flows(
    config: dict[str, Any], name: str, flow: str, required: set[str]
) -> None:
    deployment = next(d for d in config["deployments"] if d["name"] == name)
    found, parameters, needed = _flow_parameters(deployment["entrypoint"])
    assert found == flow
    assert needed == required  # supplied per run (csv_path), never baked into the deployment
    assert set(deployment["parameters"]) <= parameters


def test_pull_steps_import_and_point_at_this_checkout(config: dict[str, Any]) -> None:
    for step in config["pull"]:
        (fqn,) = step
        module, _, func = fqn.rpartition(".")
        assert callable(getattr(importlib.import_module(module), func)), fqn
    from tasks.steps import enter_project

    assert Path(enter_project()["directory"]) == ROOT
