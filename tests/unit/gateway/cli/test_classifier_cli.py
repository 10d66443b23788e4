"""`mailwarden train` / `eval` on bad input: one line naming the file, exit code 2."""

from __future__ import annotations

import pytest

from gateway.cli import main
from tests.support.corpusgen import write_tar


@pytest.mark.parametrize("command", ["train", "eval"])
def test_missing_corpus(command, tmp_path, capsys):
    extra = ["--out", str(tmp_path / "m.skops")] if command == "train" else []
    assert main([command, "--corpus", str(tmp_path / "nope.tar.gz"), *extra]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"mailwarden: {tmp_path / 'nope.tar.gz'}: corpus not found"


def test_corrupt_tar(tmp_path, capsys):
    good = write_tar(tmp_path / "good.tar.gz", 20, 20).read_bytes()
    bad = tmp_path / "bad.tar.gz"
    bad.write_bytes(good[: len(good) // 2])
    assert main(["train", "--corpus", str(bad), "--out", str(tmp_path / "m.skops")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"mailwarden: {bad}: not a readable tar archive") and "\n" not in err
    assert not (tmp_path / "m.skops").exists()


def test_model_that_is_not_a_model(tmp_path, capsys):
    corpus = write_tar(tmp_path / "c.tar.gz", 5, 5)
    fake = tmp_path / "fake.skops"
    fake.write_bytes(b"not a zip")
    assert main(["eval", "--corpus", str(corpus), "--model", str(fake)]) == 2
    assert "not a skops model file" in capsys.readouterr().err


def test_bad_max_fpr(tmp_path, capsys):
    corpus = write_tar(tmp_path / "c.tar.gz", 5, 5)
    out = str(tmp_path / "m.skops")
    assert main(["train", "--corpus", str(corpus), "--out", out, "--max-fpr", "2"]) == 2
    assert "--max-fpr" in capsys.readouterr().err


def test_update_folds_confirmed_mail_into_a_model_and_keeps_its_threshold(tmp_path, capsys):
    import mailbox

    from tests.support.mailgen import labelled
    from training.model import SpamModel

    corpus = write_tar(tmp_path / "c.tar.gz", 60, 60)
    base = tmp_path / "base.skops"
    assert (
        main(
            [
                "train",
                "--corpus",
                str(corpus),
                "--out",
                str(base),
                "--epochs",
                "3",
                "--jobs",
                "1",
                "--max-fpr",
                "0.05",
            ]
        )
        == 0
    )
    box = mailbox.mbox(tmp_path / "reported.mbox", create=True)
    for _, raw in labelled(0, 7, seed=9):
        box.add(raw)
    box.flush()
    updated = tmp_path / "updated.skops"
    args = [
        "train",
        "--update",
        str(base),
        "--corpus",
        f"spam={tmp_path / 'reported.mbox'}",
        "--out",
        str(updated),
        "--jobs",
        "1",
    ]
    assert main(args) == 0
    assert "updated with 0 ham and 7 spam (threshold kept)" in capsys.readouterr().out
    before, after = SpamModel.load(base), SpamModel.load(updated)
    assert after.threshold == before.threshold and after.version != before.version
    assert after.metadata["updates"] == [{"ham": 0, "spam": 7}]


@pytest.mark.parametrize("flag", [["--threshold-folds", "1"], ["--short-message-features", "-1"]])
def test_bad_training_options(tmp_path, capsys, flag):
    corpus = write_tar(tmp_path / "c.tar.gz", 5, 5)
    out = str(tmp_path / "m.skops")
    assert main(["train", "--corpus", str(corpus), "--out", out, *flag]) == 2
    assert flag[0] in capsys.readouterr().err
