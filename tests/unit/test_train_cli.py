"""`edgepose train`: bad inputs fail in one line and leave nothing behind; checkpoints load with
weights_only; --resume continues the same run bit for bit; --init-from swaps the activation."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from edgepose.cli import app
from edgepose.nn.config import registry_file
from tests.helpers.errors import assert_one_line_error

torch.set_num_threads(1)
runner = CliRunner()
TINY = ["--config", "edgepose-tiny", "--img", "128", "--batch", "2", "--workers", "0", "--max-steps", "1"]


def _train(*args: str) -> object:
    return runner.invoke(app, ["train", *args])


def test_unknown_config_key_suggests_the_right_one(synth_dataset: Path, tmp_path: Path) -> None:
    text = registry_file("edgepose-tiny").read_text().replace("width_multiple", "widht_multiple")
    (tmp_path / "typo.yaml").write_text(text)
    out = tmp_path / "run"
    args = ["--config", str(tmp_path / "typo.yaml"), "--data", str(synth_dataset), "--out", str(out)]
    assert_one_line_error(_train(*args), "unknown key 'widht_multiple'", "did you mean 'width_multiple'?")
    assert not out.exists()


def test_data_without_people_is_rejected(synth_dataset: Path, tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "images").symlink_to(synth_dataset / "images")
    coco = json.loads((synth_dataset / "annotations.json").read_text())
    coco["annotations"] = []
    (empty / "annotations.json").write_text(json.dumps(coco))
    out = tmp_path / "run"
    line = assert_one_line_error(_train(*TINY, "--data", str(empty), "--out", str(out)), str(empty))
    assert "no person annotations in 12 images" in line
    assert not out.exists()


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("--batch", "0", "--batch 0 must be >= 1"),
        (
            "--img",
            "100",
            "--img 100 is not divisible by the largest stride 32 of edgepose-tiny; use e.g. --img 96",
        ),
        ("--epochs", "0", "--epochs 0 must be >= 1"),
        ("--img", "0", "--img 0 is not divisible by the largest stride 32"),
        ("--lr", "nan", "--lr nan must be a finite number >= 0"),
        ("--lr", "-1", "--lr -1.0 must be a finite number >= 0"),
        ("--mosaic", "nan", "--mosaic nan must be a probability in [0, 1]"),
        ("--warmup-epochs", "-1", "--warmup-epochs -1.0 must be >= 0"),
        ("--kpt-weight", "nan", "--kpt-weight nan must be a finite weight >= 0"),
        ("--max-steps", "0", "--max-steps 0 must be >= 1"),
        ("--device", "tpu", "--device tpu is not supported; use cpu, cuda or cuda:N"),
    ],
)
def test_bad_option_values(
    synth_dataset: Path, tmp_path: Path, option: str, value: str, message: str
) -> None:
    out = tmp_path / "run"
    assert_one_line_error(
        _train(*TINY, "--data", str(synth_dataset), "--out", str(out), option, value), message
    )
    assert not out.exists()


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("--activation", "gelu", "'gelu' is not one of 'relu', 'relu6', 'silu'"),
        ("--optimizer", "rmsprop", "'rmsprop' is not one of 'sgd', 'adamw'"),
    ],
)
def test_unknown_choices_are_usage_errors(
    synth_dataset: Path, tmp_path: Path, option: str, value: str, message: str
) -> None:
    out = tmp_path / "run"
    result = _train(*TINY, "--data", str(synth_dataset), "--out", str(out), option, value)
    assert result.exit_code == 2 and result.stderr.count("\n") == 1, result.output
    assert result.stderr.startswith(f"error: Invalid value for '{option}'") and message in result.stderr
    assert "see `edgepose train --help`" in result.stderr
    assert not out.exists()


def test_choices_ignore_case(synth_dataset: Path, tmp_path: Path) -> None:
    args = [*TINY, "--data", str(synth_dataset), "--out", str(tmp_path / "run"), "--batch", "0"]
    # parsed (SGD -> sgd, ReLU6 -> relu6), then the option checks run: the --batch error proves it
    result = _train(*args, "--optimizer", "SGD", "--activation", "ReLU6")
    assert_one_line_error(result, "--batch 0 must be >= 1")


def test_checkpoint_from_another_tool_is_rejected(synth_dataset: Path, tmp_path: Path) -> None:
    foreign = tmp_path / "yolov5n.pt"
    torch.save({"conv.weight": torch.zeros(2, 3, 1, 1)}, foreign)  # a bare state_dict
    out = tmp_path / "run"
    result = _train(*TINY, "--data", str(synth_dataset), "--out", str(out), "--init-from", str(foreign))
    assert_one_line_error(result, str(foreign), "not an edgepose checkpoint", "edgepose train")
    assert not out.exists()


def test_existing_out_needs_resume(synth_dataset: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    result = _train(*TINY, "--data", str(synth_dataset), "--out", str(out))
    assert_one_line_error(result, f"--out {out} already exists", "--resume")
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]
    assert_one_line_error(_train("--data", str(synth_dataset), "--out", str(tmp_path / "x"), "--resume"),
                          "nothing to resume")  # fmt: skip


def test_train_then_resume_through_the_cli(synth_dataset: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    data = ["--data", str(synth_dataset), "--val", str(synth_dataset), "--out", str(out)]
    first = _train(*TINY, *data, "--epochs", "2", "--stop-after", "1")
    assert first.exit_code == 0, first.output
    assert f"stopped after epoch 1; continue with --resume --out {out}" in first.stdout
    assert sorted(p.name for p in out.iterdir()) == ["best.pt", "last.pt", "metrics.jsonl"]
    raw = torch.load(out / "last.pt", weights_only=True)  # loads without unpickling code
    assert raw["epoch"] == 1 and raw["config"]["name"] == "edgepose-tiny"
    assert raw["train_state"]["optimizer"]["state"]  # momentum buffers are saved
    assert torch.load(out / "best.pt", weights_only=True)["train_state"] is None
    second = _train("--resume", *data)
    assert second.exit_code == 0, second.output
    assert "best epoch" in second.stdout and (out / "results.json").is_file()
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2]
    assert {"val_ap", "loss_kpt", "lr"} <= set(rows[1])
    # People read COCO points (x100), as val and bench print them; metrics.jsonl keeps the fractions.
    assert (
        f"epoch 2/2: val AP {100 * rows[1]['val_ap']:.1f} AP50 {100 * rows[1]['val_ap50']:.1f},"
        in second.stderr
    )
    best = json.loads((out / "results.json").read_text())["metrics"]
    assert f"OKS AP {100 * best['ap']:.1f} (AP50 {100 * best['ap50']:.1f}, COCO points)" in second.stdout
    assert torch.load(out / "last.pt", weights_only=True)["epoch"] == 2


def _options(**kw: object) -> object:
    from edgepose.train.loop import TrainOptions
    from edgepose.train.options import AugmentConfig

    # One step per epoch: epoch 2's step depends on epoch 1's momentum, EMA count and LR position.
    base = dict(epochs=2, batch=2, img=128, workers=0, max_steps_per_epoch=1, warmup_epochs=0.5,
                aug=AugmentConfig(mosaic=0.5), seed=3)  # fmt: skip
    base.update(kw)
    return TrainOptions(**base)  # type: ignore[arg-type]


def test_resume_restores_optimizer_ema_and_schedule_exactly(synth_dataset: Path, tmp_path: Path) -> None:
    from edgepose.data.convert import read_dataset
    from edgepose.nn.checkpoint import load_checkpoint
    from edgepose.nn.config import resolve_config
    from edgepose.train.loop import TrainCallbacks, train

    cfg, data = resolve_config("edgepose-tiny"), read_dataset(synth_dataset)
    straight = train(cfg, data, None, tmp_path / "a", _options())

    def stop(record: dict) -> None:
        if record["epoch"] == 1:
            raise KeyboardInterrupt  # after epoch 1 was saved: as if the run was killed there

    with pytest.raises(KeyboardInterrupt):
        train(cfg, data, None, tmp_path / "b", _options(), callbacks=TrainCallbacks(on_epoch=stop))
    assert load_checkpoint(tmp_path / "b" / "last.pt").epoch == 1
    resumed = train(cfg, data, None, tmp_path / "b", _options(), resume=True)
    for (name, a), b in zip(
        straight.model.state_dict().items(), resumed.model.state_dict().values(), strict=True
    ):
        assert torch.equal(a, b), name
    ema_a = load_checkpoint(tmp_path / "a" / "last.pt").model.state_dict()
    ema_b = load_checkpoint(tmp_path / "b" / "last.pt").model.state_dict()
    assert all(torch.equal(ema_a[k], ema_b[k]) for k in ema_a)


def test_init_from_swaps_activation(synth_dataset: Path, tmp_path: Path, tiny_checkpoint: Path) -> None:
    out = tmp_path / "relu6"
    args = ["--init-from", str(tiny_checkpoint), "--activation", "relu6", "--data", str(synth_dataset)]
    result = _train(*TINY[2:], *args, "--out", str(out), "--epochs", "1", "--lr", "0")
    assert result.exit_code == 0, result.output
    from edgepose.nn.checkpoint import load_checkpoint

    tuned, start = load_checkpoint(out / "best.pt"), load_checkpoint(tiny_checkpoint)
    assert tuned.cfg.activation.value == "relu6" and start.cfg.activation.value == "relu"
    assert any(isinstance(m, torch.nn.ReLU6) for m in tuned.model.modules())
    # lr 0: the conv weights are the initial checkpoint's (only BN statistics move in train mode).
    w0 = start.model.state_dict()["backbone.stem.conv.weight"]
    torch.testing.assert_close(tuned.model.state_dict()["backbone.stem.conv.weight"], w0)


def test_init_from_trains_at_the_size_the_checkpoint_was_trained_at(
    synth_dataset: Path, tmp_path: Path, tiny_checkpoint: Path
) -> None:
    from edgepose.nn.checkpoint import load_checkpoint, save_checkpoint
    from edgepose.spec import PoseSpec

    start = load_checkpoint(tiny_checkpoint)  # edgepose-tiny: its config says 128
    spec64 = PoseSpec(name="edgepose-tiny", input_size=(64, 64))
    at64 = save_checkpoint(tmp_path / "at64.pt", start.model, spec64, epoch=1, metrics={})
    base = [
        "--data",
        str(synth_dataset),
        "--batch",
        "2",
        "--workers",
        "0",
        "--max-steps",
        "1",
        "--epochs",
        "1",
    ]
    for extra, size in (([], 64), (["--img", "96"], 96)):
        out = tmp_path / f"run{size}"
        result = _train(*base, "--init-from", str(at64), "--out", str(out), *extra)
        assert result.exit_code == 0, result.output
        assert load_checkpoint(out / "best.pt").spec.input_size == (size, size)


def test_init_from_warms_biases_up_from_zero(
    synth_dataset: Path, tmp_path: Path, tiny_checkpoint: Path
) -> None:
    # 2 epochs of 1 step: step 0 is the warmup step. From scratch the recipe gives biases lr 0.1 there;
    # a fine-tune must not (it knocked a trained model's AP down by two thirds), so at --lr 0 nothing moves.
    out = tmp_path / "tuned"
    args = ["--init-from", str(tiny_checkpoint), "--data", str(synth_dataset), "--out", str(out)]
    result = _train(*TINY[2:], *args, "--epochs", "2", "--lr", "0", "--warmup-epochs", "1")
    assert result.exit_code == 0, result.output
    from edgepose.nn.checkpoint import load_checkpoint

    tuned = load_checkpoint(out / "last.pt").train_state["model"]
    start = load_checkpoint(tiny_checkpoint).model.state_dict()
    for name in ("head.convs.0.bias", "head.convs.2.bias", "neck.bu.1.cv3.bn.bias"):
        torch.testing.assert_close(tuned[name], start[name], rtol=0, atol=0)


def test_interrupt_before_first_checkpoint_leaves_no_run_folder(
    synth_dataset: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import edgepose.train.loop as loop

    def interrupted(
        cfg: object, train_set: object, val_set: object, out: Path, *a: object, **k: object
    ) -> None:
        (Path(out) / "metrics.jsonl").write_text("{}\n")  # something partial, then Ctrl-C
        raise KeyboardInterrupt

    monkeypatch.setattr(loop, "train", interrupted)
    out = tmp_path / "run"
    result = _train(*TINY, "--data", str(synth_dataset), "--out", str(out))
    assert result.exit_code == 130
    assert "interrupted" in result.stderr
    assert not out.exists()


def test_out_that_cannot_be_created_is_one_line(synth_dataset: Path, tmp_path: Path) -> None:
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    out = blocker / "run"  # mkdir fails (ENOTDIR) whatever the user's privileges
    result = _train(*TINY, "--data", str(synth_dataset), "--out", str(out))
    assert_one_line_error(result, f"cannot create --out {out}", "choose another --out")
    assert blocker.read_text() == "not a folder"


def test_resume_applies_or_refuses_each_changed_option_and_a_finished_run_writes_nothing(
    synth_dataset: Path, tmp_path: Path
) -> None:
    from tests.helpers.errors import tree_hashes

    out = tmp_path / "run"
    data = ["--data", str(synth_dataset), "--out", str(out)]
    first = _train(*TINY, *data, "--epochs", "2", "--stop-after", "1")
    assert first.exit_code == 0, first.output
    before = tree_hashes(out)
    # Options that shape the run cannot change mid-run: all of them named in one line, nothing written.
    refused = _train(*data, "--resume", "--img", "96", "--batch", "4", "--max-steps", "2", "--lr", "0.01")
    assert_one_line_error(
        refused,
        f"--resume continues {out} as it was started; --img 96 (run: 128), --batch 4 (run: 2), "
        "--max-steps 2 (run: 1) cannot change mid-run: drop them, or start a new run with another --out",
    )  # --lr 0.01 is the run's own value: not a change
    assert tree_hashes(out) == before
    # The same values as the run, and the options that may change, are applied and said so.
    applied = _train(*TINY, *data, "--resume", "--epochs", "3")
    assert applied.exit_code == 0, applied.output
    assert f"resuming {out} after epoch 1: --epochs 3 (was 2)" in applied.stderr
    assert "epochs 2..3" in applied.stderr and torch.load(out / "last.pt", weights_only=True)["epoch"] == 3
    # A finished run says so and writes nothing (results.json keeps the real run's wall time).
    done = tree_hashes(out)
    mtimes = {p: p.stat().st_mtime_ns for p in out.iterdir()}
    again = _train(*data, "--resume")
    assert again.exit_code == 0, again.output
    assert again.stdout.strip() == (
        f"{out} has already trained 3 of 3 epochs: nothing to do, nothing written (to train longer: "
        "--resume --epochs N with N > 3)"
    )
    assert "epochs 4..3" not in again.output and again.stderr == ""
    fewer = _train(*data, "--resume", "--epochs", "2")
    assert fewer.exit_code == 0 and "has already trained 3 of 2 epochs: nothing to do" in fewer.stdout
    assert tree_hashes(out) == done and {p: p.stat().st_mtime_ns for p in out.iterdir()} == mtimes
