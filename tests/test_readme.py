"""The README cannot rot: its Python blocks run (lines marked ``# needs the network`` skipped),
and every ``zoo ...`` command it shows is accepted by the command line's parser."""

import re
import shlex
from pathlib import Path

import numpy as np
import pytest

from zoo.cli import build_parser

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text()
NETWORK = "# needs the network"
CIFAR10 = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def fenced(language):
    return [m.group(1) for m in re.finditer(rf"```{language}\n(.*?)```", README, re.S)]


def indented_blocks():
    """Markdown code blocks indented by four spaces (outside fenced blocks and tables)."""
    text = re.sub(r"```.*?```", "", README, flags=re.S)
    return [re.sub(r"^    ", "", m.group(0), flags=re.M) for m in re.finditer(r"(?:^    .*\S.*\n)+", text, re.M)]


def shown_commands():
    """``zoo ...`` command lines shown in full: in shell blocks (continuation lines joined)."""
    lines = []
    for block in fenced("bash") + indented_blocks():
        for line in block.replace("\\\n", " ").splitlines():
            lines += [part.strip() for part in line.split("#")[0].split("&&") if part.strip().startswith("zoo ")]
    return lines


def mentioned_commands():
    """``zoo ...`` in inline code without placeholders (``[--opt]``, ``a|b``, ``...``, upper-case
    names); often a part of a command (``zoo predict --map attention_2``)."""
    return [code for code in re.findall(r"`(zoo [^`]+)`", README)
            if not re.search(r"[\[\]|]|\.\.\.|\b[A-Z][A-Z_]+\b", code)]


def test_the_readme_shows_commands_and_python():
    assert len(fenced("python")) >= 2 and len(shown_commands()) >= 2 and len(mentioned_commands()) >= 5


def parse(command):
    """The parser's complaint about `command` (None: accepted)."""
    import contextlib
    import io

    complaint = io.StringIO()
    try:
        with contextlib.redirect_stderr(complaint):
            build_parser().parse_args(shlex.split(command)[1:])
    except SystemExit:  # argparse's way of refusing an option or a value
        return complaint.getvalue().strip().splitlines()[-1]
    return None


@pytest.mark.parametrize("command", shown_commands())
def test_every_command_shown_parses(command):
    assert parse(command) is None, f"README command `{command}`"


@pytest.mark.parametrize("command", mentioned_commands())
def test_every_command_mentioned_uses_real_options(command):
    complaint = parse(command)  # a part of a command may leave out required arguments, nothing else
    assert complaint is None or "the following arguments are required" in complaint, (command, complaint)


@pytest.mark.parametrize("index", range(len(fenced("python"))))
def test_python_block_runs(index, tmp_path, monkeypatch):
    (tmp_path / "examples").symlink_to(REPO / "examples")
    rng = np.random.default_rng(0)  # a stand-in for the CIFAR-10 copy the robustness example reads
    np.savez(tmp_path / "cifar10-jpeg.npz", x_test=rng.integers(0, 256, (4, 32, 32, 3)).astype("uint8"),
             y_test=np.arange(4), class_names=np.array(CIFAR10))
    monkeypatch.chdir(tmp_path)
    block = fenced("python")[index]
    code = "\n".join(line for line in block.splitlines() if NETWORK not in line)
    exec(compile(code, f"README.md python block {index + 1}", "exec"), {"__name__": "readme"})


def test_the_layout_names_every_module_and_script():
    """A newcomer finds any piece by its name: the README's Layout names every module and script
    (a ``train_*.sh``-style pattern covers the files it matches)."""
    layout = README[README.index("## Layout"):]
    named = re.findall(r"`([\w*.]+\.(?:py|sh))`", layout)
    sources = [*(REPO / "zoo").rglob("*.py"), *(REPO / "scripts").glob("*.py"), *(REPO / "scripts").glob("*.sh")]
    files = [p for p in sources if p.name != "__init__.py"]
    missing = [str(p.relative_to(REPO)) for p in files if not any(Path(p.name).match(pattern) for pattern in named)]
    assert len(files) > 40 and missing == [], f"not in the README's Layout: {missing}"
