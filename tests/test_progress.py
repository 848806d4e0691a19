"""Long commands say what they do: a line as each stage starts (what, how many) and ends (in a log
or with --no-progress), one per benchmark row, nothing with --quiet; the benchmark table once."""

import numpy as np

import zoo
from tests.conftest import write_toy_npz
from zoo.cli import main
from zoo.progress import Progress


def test_log_lines_say_what_how_many_and_when_done(capsys):
    shown = Progress(3, "scoring", "lines", unit="row", step_lines=True)
    for note in ("a", "b", "c"):
        shown.advance(note)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "scoring: 3 rows"
    assert lines[1].startswith("  1/3 a (") and "s left)" in lines[1] and lines[2].startswith("  2/3 b (")
    assert lines[3].startswith("scoring: done in ") and len(lines) == 4
    quiet = Progress(3, "scoring", False)
    quiet.advance()
    assert capsys.readouterr().out == ""


def stage_lines(text):
    return [line for line in text.splitlines() if line.startswith(("evaluating", "benchmark", "abn_resnet20"))]


def test_evaluate_and_robustness_report_their_stages(tiny_model, tmp_path, capsys):
    zoo.save_model(tiny_model, tmp_path / "m", class_names=["red", "blue"])
    write_toy_npz(tmp_path / "d.npz")
    assert main(["evaluate", str(tmp_path / "m"), "--data", str(tmp_path / "d.npz"), "--batch-size", "8"]) == 0
    lines = stage_lines(capsys.readouterr().out)  # not a terminal: no bar, a line per stage
    assert lines[0] == "evaluating abn_resnet20 on 32 test images: 4 batches" and "done in" in lines[1]
    assert main(["robustness", str(tmp_path / "m"), "--data", str(tmp_path / "d.npz"), "--attacks", "fgsm", "noise",
                 "--epsilons", "0", "2", "--sigmas", "8", "--max-examples", "20", "--no-progress"]) == 0
    lines = stage_lines(capsys.readouterr().out)
    assert lines[0] == "abn_resnet20: 3 attacks x strengths on 20 test images: 3 attacked batches"
    assert lines[1].startswith("abn_resnet20: 3 attacks x strengths on 20 test images: done in ")
    assert main(["evaluate", str(tmp_path / "m"), "--data", str(tmp_path / "d.npz"), "--quiet"]) == 0
    assert stage_lines(capsys.readouterr().out) == []


def test_benchmark_reports_each_row_and_prints_its_table_once(tiny_model, tmp_path, capsys):
    zoo.save_model(tiny_model, tmp_path / "m", class_names=["red", "blue"])
    x = np.random.default_rng(0).integers(0, 256, (6, 16, 16, 3)).astype("uint8")
    np.savez(tmp_path / "p.npz", x_test=x, y_test=np.arange(6) % 2)
    assert main(["benchmark", str(tmp_path / "m"), "--data", str(tmp_path / "p.npz"), "--methods", "gradcam",
                 "random", "--no-progress"]) == 0
    out = capsys.readouterr().out
    lines = stage_lines(out)
    assert lines[0] == "benchmark: 1 model(s) x 2 methods on 6 test images: 2 rows"
    assert f"  1/2 {tmp_path / 'm'} gradcam (" in out and "benchmark: 1 model(s) x 2 methods" in lines[-1]
    assert out.count("| gradcam |") == 1 and out.count("| model | method |") == 1


def test_training_says_it_evaluates_the_test_set(tmp_path, capsys):
    write_toy_npz(tmp_path / "d.npz", n_train=16, n_test=8)
    assert main(["train", "abn_resnet20", "--data", str(tmp_path / "d.npz"), "--image-size", "16", "16",
                 "--model-arg", "depth=8", "--model-arg", "width=4", "--epochs", "1", "--batch-size", "8",
                 "--output", str(tmp_path / "out"), "--no-progress"]) == 0
    lines = stage_lines(capsys.readouterr().out)
    assert lines[0] == "evaluating abn_resnet20 on 8 test images: 1 batch" and "done in" in lines[1]


def test_explain_reports_each_method(tiny_model, tmp_path, capsys):
    from PIL import Image

    zoo.save_model(tiny_model, tmp_path / "m", class_names=["red", "blue"])
    Image.fromarray(np.zeros((16, 16, 3), "uint8")).save(tmp_path / "a.png")
    assert main(["explain", str(tmp_path / "m"), str(tmp_path / "a.png"), "--methods", "attention", "gradcam",
                 "--out", str(tmp_path / "ex")]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "explaining 1 image(s): 2 methods" and lines[1].startswith("  1/2 attention (")
    assert lines[2].startswith("explaining 1 image(s): done in ") and lines[3] == str(tmp_path / "ex" / "a.explain.png")
