"""pyproject.toml, environment.yml and binder/environment.yml must name the same dependency set."""

import tomllib
import yaml


def _pip_list(path):
    env = yaml.safe_load(path.read_text())
    for item in env["dependencies"]:
        if isinstance(item, dict) and "pip" in item:
            return {dep for dep in item["pip"] if not dep.startswith("-e")}
    raise AssertionError(f"{path} has no pip section")


def test_dependency_lists_agree(repo_root):
    project = tomllib.loads((repo_root / "pyproject.toml").read_text())
    declared = set(project["project"]["dependencies"])
    assert _pip_list(repo_root / "environment.yml") == declared
    assert _pip_list(repo_root / "binder" / "environment.yml") == declared


def test_no_exact_pins(repo_root):
    project = tomllib.loads((repo_root / "pyproject.toml").read_text())
    pinned = [d for d in project["project"]["dependencies"] if "==" in d or "<" in d]
    assert pinned == [], "lower bounds only, so Colab's own packages are not downgraded"


def test_binder_installs_the_package_without_dependencies(repo_root):
    post_build = (repo_root / "binder" / "postBuild").read_text()
    assert post_build.startswith("#!/bin/bash")
    assert "pip install --no-deps -e ." in post_build
    assert "-e ." not in (repo_root / "binder" / "environment.yml").read_text()
