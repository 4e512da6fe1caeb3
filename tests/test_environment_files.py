"""pyproject.toml, environment.yml and binder/environment.yml must name the same dependency set."""

import tomllib
import yaml


def _pip_section(path):
    env = yaml.safe_load(path.read_text())
    for item in env["dependencies"]:
        if isinstance(item, dict) and "pip" in item:
            return item["pip"]
    raise AssertionError(f"{path} has no pip section")


def _pip_list(path):
    """The requirements of a pip section, without pip options (``-e .``, ``--extra-index-url ...``)."""
    return {dep for dep in _pip_section(path) if not dep.startswith("-")}


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


def test_binder_takes_torch_from_the_cpu_wheel_index(repo_root):
    """PyPI's torch is the CUDA build (GBs of CUDA libraries); Binder has no GPU. An extra index, so the
    other packages still come from PyPI, and pip prefers the index's ``+cpu`` build of the same version."""
    section = _pip_section(repo_root / "binder" / "environment.yml")
    assert "--extra-index-url https://download.pytorch.org/whl/cpu" in section
    assert not any(line.startswith("--index-url") for line in section), "other packages are not there"
