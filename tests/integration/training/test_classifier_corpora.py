"""Train and evaluate through the CLI on a small slice of the real shared corpora."""

from __future__ import annotations

import io
import json
import tarfile

import pytest

from gateway.cli import main
from gateway.paths import corpora_dir
from training.corpus import parse_spec, read_corpus
from training.model import SpamModel

CORPORA = corpora_dir()
NAMES = ("spamassassin", "trec06c_subset")  # English and Chinese
PER_LABEL = 120

pytestmark = pytest.mark.skipif(
    not all((CORPORA / f"{n}.tar.gz").is_file() for n in NAMES),
    reason=f"labelled corpora not found in {CORPORA} (set MAILWARDEN_CORPORA)",
)


def _slice(name: str, out_dir) -> str:
    """Every k-th ham and spam of a real corpus, written as a small tar.gz in tmp."""
    messages = list(read_corpus(parse_spec(str(CORPORA / f"{name}.tar.gz"))))
    path = out_dir / f"{name}.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        for label in (0, 1):
            group = [m for m in messages if m.label == label]
            for m in group[:: max(1, len(group) // PER_LABEL)][:PER_LABEL]:
                info = tarfile.TarInfo(m.name)
                info.size = len(m.raw)
                tar.addfile(info, io.BytesIO(m.raw))
    return str(path)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("slices")
    slices = [_slice(name, tmp) for name in NAMES]
    model = tmp / "model.skops"
    args = ["train", "--out", str(model), "--jobs", "1", "--epochs", "5", "--max-fpr", "0.01"]
    for path in slices:
        args += ["--corpus", path]
    assert main(args) == 0
    return slices, model


def test_train_writes_a_model_with_metadata(trained):
    _, model = trained
    meta = SpamModel.load(model).metadata
    assert {c["corpus"] for c in meta["training_data"]} == set(NAMES)
    assert meta["split"]["validation"]["ham"] > 0 and meta["split"]["validation"]["spam"] > 0
    assert meta["validation"]["auc"] > 0.9
    assert set(meta["validation"]["per_corpus"]) == set(NAMES)


def test_eval_json_on_the_held_out_side(trained, capsys):
    slices, model = trained
    capsys.readouterr()
    args = ["eval", "--model", str(model), "--json"]
    for path in slices:
        args += ["--corpus", path]
    assert main(args) == 0
    report = json.loads(capsys.readouterr().out)
    for key in (
        "ham",
        "spam",
        "false_positives",
        "false_negatives",
        "spam_recall",
        "fp_rate",
        "fp_rate_ci95",
        "spam_recall_ci95",
        "auc",
        "recall_at_fpr",
        "messages_per_second",
        "per_corpus",
    ):
        assert key in report, key
    meta = SpamModel.load(model).metadata
    # only messages the model never trained on: exactly its validation side
    assert report["ham"] == meta["split"]["validation"]["ham"]
    assert report["spam"] == meta["split"]["validation"]["spam"]
    assert all("validation side only" in s for s in report["selection"].values())
    assert set(report["per_corpus"]) == set(NAMES)
    lo, hi = report["fp_rate_ci95"]
    assert 0 <= lo <= report["fp_rate"] <= hi <= 1
    lo, hi = report["spam_recall_ci95"]
    assert 0 <= lo <= report["spam_recall"] <= hi <= 1
    assert report["spam_recall"] > 0.5 and report["auc"] > 0.9
    assert set(report["recall_at_fpr"]) == {"0.001", "0.0001"}
    assert report["messages_per_second"] > 0
    assert report["false_positives"] == round(report["fp_rate"] * report["ham"])


def test_eval_model_only_and_pipeline_modes_agree_without_rules_firing(trained, capsys):
    slices, model = trained
    base = ["eval", "--model", str(model), "--json", "--corpus", slices[1]]
    capsys.readouterr()
    assert main([*base, "--model-only"]) == 0
    alone = json.loads(capsys.readouterr().out)
    assert main(base) == 0
    piped = json.loads(capsys.readouterr().out)
    assert alone["mode"] == "model" and piped["mode"] == "pipeline"
    assert piped["policy_tag"] == 5.0  # the default tag threshold
    meta = SpamModel.load(model).metadata
    per = meta["validation"]["per_corpus"][NAMES[1]]
    assert (
        (piped["ham"], piped["spam"])
        == (alone["ham"], alone["spam"])
        == (
            per["ham"],
            per["spam"],
        )
    )
    assert piped["auc"] == pytest.approx(alone["auc"])  # both grade the classifier's score
    # at the model's threshold the classifier alone reaches tag: the verdicts can only
    # add spam (rules), never lose what the model caught
    assert piped["spam"] - piped["false_negatives"] >= alone["spam"] - alone["false_negatives"]


def test_eval_unknown_filter_is_a_clear_error(trained, capsys):
    slices, model = trained
    args = ["eval", "--model", str(model), "--filters", "classifier,nope", "--corpus", slices[1]]
    assert main(args) == 2
    assert "--filters: unknown filter 'nope'" in capsys.readouterr().err
