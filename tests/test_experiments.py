"""The experiment contract: every experiment takes the same options, checked in one place, and results of
runs that are not a committed configuration never land in results/."""

import json

import pytest

from mernlib import experiments
from mernlib.cli import build_parser, main


def test_every_experiment_module_follows_the_contract():
    for name in experiments.EXPERIMENTS:
        mod = experiments.module(name)
        assert mod.VARIANTS and set(mod.DEFAULT_VARIANTS) <= set(mod.VARIANTS), name
        assert callable(mod.reproduce) and (callable(getattr(mod, "table", None)) or callable(mod.summarize))
        assert set(experiments.SCALES[name]) == set(experiments.SCALE_NAMES), name
        assert all(s.get("about") for s in experiments.SCALES[name].values()), name


def test_reproduce_help_is_the_same_for_every_experiment(capsys):
    helps = []
    for name in [*experiments.EXPERIMENTS, "all"]:
        with pytest.raises(SystemExit):
            build_parser().parse_args(["reproduce", name, "--help"])
        helps.append(capsys.readouterr().out)
    assert len(set(helps)) == 1
    for option in ("--corpus", "--seed", "--scale", "--only", "--epochs", "--results-dir", "--data-dir"):
        assert option in helps[0]


@pytest.mark.parametrize(
    "argv, message",
    [
        (["reproduce", "data", "--epochs", "1"], "data trains nothing: --epochs does not apply"),
        (["reproduce", "mtl", "--only", "no-such-row", "--corpus", "sample"], "unknown variant"),
        (["reproduce", "mtl", "--epochs", "0", "--corpus", "sample"], "positive whole number"),
    ],
)
def test_bad_options_are_one_line_and_exit_2(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err and "Traceback" not in err


def test_unknown_experiment_or_scale_is_refused_by_the_parser(capsys):
    for argv in (["reproduce", "nope"], ["reproduce", "mtl", "--scale", "huge"]):
        with pytest.raises(SystemExit) as exit_:
            main(argv)
        assert exit_.value.code == 2


def test_reproduce_data_on_the_sample_writes_one_run(tmp_path, capsys):
    assert main(["reproduce", "data", "--corpus", "sample", "--results-dir", str(tmp_path)]) == 0
    result = json.loads((tmp_path / "data" / "sample.json").read_text())
    (run,) = result["runs"].values()
    assert run["all_splits"]["lost_mentions"] == 0 and run["provenance"]["git_commit"]
    assert [row["split"] for row in result["summary"]] == ["train", "dev", "test", "all"]


def test_quick_runs_and_epoch_overrides_default_to_runs_results():
    assert str(experiments.default_results_dir("full", None)) == "results"
    assert str(experiments.default_results_dir("reduced", None)) == "results"
    assert str(experiments.default_results_dir("quick", None)).startswith("runs")
    assert str(experiments.default_results_dir("full", 2)).startswith("runs")
