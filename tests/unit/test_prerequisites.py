"""scripts/check-prerequisites.sh with fake toolchains on PATH: one line per missing piece."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "check-prerequisites.sh"
BASH = "/bin/bash"
GOOD = {
    "python3": "echo 3.11; exit 0",
    "node": "echo v20.20.2",
    "npm": "echo 11.1.0",
    "go": "echo go version go1.26.8 linux/amd64",
    "id": "echo 0",
    "apt-get": "exit 0",
    "sudo": "exit 0",
    "dpkg-query": "echo 'install ok installed'",
}


def _run(
    tmp_path: Path, tools: dict[str, str], *packages: str, repo: Path | None = None
) -> tuple[int, list[str]]:
    """Run the script with only `tools` on PATH (each a tiny bash script) and `repo` (default:
    an empty one) as the repository."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(parents=True)
    for name, body in tools.items():
        tool = bin_dir / name
        tool.write_text(f"#!{BASH}\n{body}\n")
        tool.chmod(0o755)
    result = subprocess.run(
        [BASH, str(SCRIPT), *packages],
        env={"PATH": str(bin_dir), "PREREQ_ROOT": str(repo or tmp_path / "repo")},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.stdout == ""
    return result.returncode, result.stderr.strip().splitlines()


def _missing(lines: list[str]) -> list[str]:
    return [line for line in lines if line.startswith("missing prerequisite: ")]


def test_everything_present_passes_silently(tmp_path: Path) -> None:
    assert _run(tmp_path, GOOD, "espeak-ng", "sox") == (0, [])


@pytest.mark.parametrize(
    ("tools", "expected"),
    [
        ({"go": "echo go version go1.19.8 linux/amd64"}, "Go >= 1.26 (found 'go version go1.19.8"),
        ({"go": None}, "Go >= 1.26 (go not found"),
        ({"node": "echo v18.19.0"}, "Node.js >= 20 (node is v18.19.0)"),
        ({"node": None}, "Node.js >= 20 (node not found"),
        ({"npm": None}, "npm (comes with Node.js"),
        ({"python3": "echo 3.9"}, "Python >= 3.11 (python3 is 3.9"),
        ({"python3": None}, "Python >= 3.11 (python3 not found"),
        ({"python3": "echo 3.11; exit 1"}, "Python's venv module"),
    ],
)
def test_each_missing_toolchain_is_one_line(
    tmp_path: Path, tools: dict[str, str | None], expected: str
) -> None:
    fake = {k: v for k, v in {**GOOD, **tools}.items() if v is not None}
    rc, lines = _run(tmp_path, fake)
    assert rc == 1
    (line,) = _missing(lines)
    assert line.startswith(f"missing prerequisite: {expected}"), line


def test_go_is_not_needed_once_its_builds_are_cached(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    (repo / "devstack").mkdir(parents=True)
    (repo / "devstack" / "livekit_server.py").write_text('LIVEKIT_SERVER_VERSION = "v9.9.9"\n')
    builds = (".cache/livekit-server/v9.9.9/livekit-server", ".cache/tools/dockerignore-oracle")
    for built in builds:
        (repo / built).parent.mkdir(parents=True)
        (repo / built).write_text("")
        (repo / built).chmod(0o755)
    no_go = {k: v for k, v in GOOD.items() if k != "go"}
    assert _run(tmp_path, no_go) == (0, [])
    (repo / ".cache/tools/dockerignore-oracle").unlink()
    rc, lines = _run(tmp_path / "again", no_go, repo=repo)
    assert rc == 1
    assert _missing(lines)[0].startswith("missing prerequisite: Go >= 1.26 (go not found")


def test_no_root_and_no_sudo_matters_only_when_a_package_is_missing(tmp_path: Path) -> None:
    fake = {k: v for k, v in GOOD.items() if k != "sudo"}
    fake["id"] = "echo 1000"
    assert _run(tmp_path / "a", fake, "sox")[0] == 0
    fake["dpkg-query"] = "echo 'unknown ok not-installed'"
    rc, lines = _run(tmp_path / "b", fake, "sox", "espeak-ng")
    assert rc == 1
    assert _missing(lines) == [
        "missing prerequisite: root or sudo (to apt-get install sox espeak-ng)"
    ]


def test_several_problems_give_one_line_each(tmp_path: Path) -> None:
    fake = {k: v for k, v in GOOD.items() if k not in ("go", "npm", "apt-get")}
    fake["dpkg-query"] = "echo 'unknown ok not-installed'"
    rc, lines = _run(tmp_path, fake, "chromium")
    assert rc == 1
    assert len(_missing(lines)) == 3, lines
    assert lines[-1].startswith("install the above")


def test_bootstrap_checks_prerequisites_before_installing_anything() -> None:
    text = (SCRIPT.parent / "bootstrap.sh").read_text()
    check = text.index("check-prerequisites.sh")
    assert check < text.index("apt-get")
    assert check < text.index("sync --locked")
