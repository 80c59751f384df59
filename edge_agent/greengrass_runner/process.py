"""How a lifecycle step runs, as the nucleus runs it: which user, which environment, Skipif, timeouts.

- User: the nucleus started as root runs steps as its `runWithDefault` user (`ggc_user:ggc_group`
  from the installer's `--component-default-user`), and as root only for `RequiresPrivilege`
  steps; started as another user, it runs them as itself. The runner does the same; the user
  must exist (the runner, like the nucleus, does not create it) and have a home.
- Environment: built from nothing rather than inherited from whoever started the runner: PATH,
  HOME/USER/LOGNAME of the step's user, and the variables the nucleus sets for every step
  (AWS_IOT_THING_NAME, AWS_REGION, AWS_DEFAULT_REGION, GG_ROOT_CA_PATH, GGC_VERSION, SVCUID and
  AWS_CONTAINER_AUTHORIZATION_TOKEN, AWS_GG_NUCLEUS_DOMAIN_SOCKET_FILEPATH_FOR_COMPONENT, and
  AWS_CONTAINER_CREDENTIALS_FULL_URI for components that depend on the token exchange service).
  The runner has no IPC server, token exchange service or root CA, so those values are stand-ins
  that point at nothing; the nucleus-level `setenv` and the recipe's Setenv come on top.
- Skipif: `[!]onpath EXECUTABLE` (on the step's PATH) or `[!]exists FILE` (`~/` is HOME,
  `~root/` the root folder), as GenericExternalService.shouldSkip reads it.

Standard library only: the run supervisor (supervisor.py) imports this in its own process.
"""

from __future__ import annotations

import grp
import json
import os
import pwd
import re
import shutil
import signal
import subprocess
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from edge_agent.errors import AgentError

DEFAULT_USER = "ggc_user:ggc_group"
USER_ENV = "EDGE_AGENT_RUNNER_USER"
# The PATH a nucleus started by systemd passes on (systemd's default for system services).
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
NUCLEUS_VERSION = "2.14.3"  # GGC_VERSION stand-in: the nucleus release whose behaviour the runner follows
TOKEN_EXCHANGE_SERVICE = "aws.greengrass.TokenExchangeService"
SKIPIF = re.compile(r"^(onpath|exists)\s+(.+)$")
TIMEOUT_EXIT = 124
STOP_GRACE_S = 10.0


class RunAsError(AgentError):
    """The user steps should run as cannot be used; the message says how to fix it."""


@dataclass(frozen=True)
class RunAs:
    """The POSIX user and group a step runs as."""

    user: str
    group: str
    uid: int
    gid: int
    home: str

    @classmethod
    def resolve(cls, spec: str) -> RunAs:
        """`user[:group]` to ids; the group defaults to the user's primary group."""
        name, _, group_name = spec.partition(":")
        try:
            entry = pwd.getpwnam(name)
        except KeyError:
            raise RunAsError(
                f"steps run as {spec!r}, but there is no user {name!r} on this machine. Create it as the Greengrass "
                f"installer does for --component-default-user ({_create_hint(name, group_name)}), or choose "
                f"another user with ${USER_ENV}=USER[:GROUP] (the nucleus's runWithDefault posixUser)"
            ) from None
        if group_name:
            try:
                gid = grp.getgrnam(group_name).gr_gid
            except KeyError:
                raise RunAsError(
                    f"steps run as {spec!r}, but there is no group {group_name!r}: "
                    f"{_create_hint(name, group_name)}"
                ) from None
        else:
            gid = entry.pw_gid
            group_name = grp.getgrgid(gid).gr_name
        return cls(name, group_name, entry.pw_uid, gid, entry.pw_dir)

    @classmethod
    def current(cls) -> RunAs:
        entry = pwd.getpwuid(os.geteuid())
        return cls(
            entry.pw_name, grp.getgrgid(os.getegid()).gr_name, entry.pw_uid, os.getegid(), entry.pw_dir
        )

    @property
    def switches(self) -> bool:
        """True when starting a step means changing user (the runner runs as someone else)."""
        return (self.uid, self.gid) != (os.geteuid(), os.getegid())

    def popen_kwargs(self) -> dict[str, Any]:
        """Switch to the user with its supplementary groups (as `sudo -u USER -g GROUP` does)."""
        if not self.switches:
            return {}
        return {"user": self.uid, "group": self.gid, "extra_groups": os.getgrouplist(self.user, self.gid)}

    @property
    def spec(self) -> str:
        return f"{self.user}:{self.group}"


def _create_hint(user: str, group: str) -> str:
    group = group or user
    return f"groupadd --system {group} && useradd --system --create-home --gid {group} {user}"


def default_run_as(explicit: str | None = None) -> RunAs:
    """The nucleus's choice: ggc_user:ggc_group when started as root, else the current user."""
    spec = explicit or os.environ.get(USER_ENV)
    if spec:
        run_as = RunAs.resolve(spec)
        if run_as.switches and os.geteuid() != 0:
            raise RunAsError(
                f"steps should run as {spec!r}, but the runner is not root and cannot switch user; run it as root "
                f"or unset ${USER_ENV}"
            )
        return run_as
    return RunAs.resolve(DEFAULT_USER) if os.geteuid() == 0 else RunAs.current()


def check_reachable(path: Path, run_as: RunAs) -> None:
    """Every folder above `path` must let the step's user through, or its scripts cannot reach their files."""
    if not run_as.switches:
        return
    groups = {run_as.gid, *(g.gr_gid for g in grp.getgrall() if run_as.user in g.gr_mem)}
    for folder in [path, *path.parents]:
        info = folder.stat()
        if info.st_uid == run_as.uid:
            allowed = info.st_mode & 0o100
        elif info.st_gid in groups:
            allowed = info.st_mode & 0o010
        else:
            allowed = info.st_mode & 0o001
        if not allowed:
            raise RunAsError(
                f"steps run as {run_as.user}, who cannot enter {folder} (mode {oct(info.st_mode & 0o777)}); "
                f"put the root folder where {run_as.user} can reach it (the nucleus uses /greengrass/v2) or "
                f"`chmod o+x {folder}`"
            )


def base_environment(
    run_as: RunAs,
    component: str,
    root: Path,
    thing_name: str,
    region: str,
    dependencies: tuple[str, ...] = (),
) -> dict[str, str]:
    """What the nucleus puts in every step's environment (values it cannot have here are stand-ins)."""
    token = f"runner-{component}"  # SVCUID stand-in: there is no IPC server to present it to
    env = {
        "PATH": DEFAULT_PATH,
        "HOME": run_as.home,
        "USER": run_as.user,
        "LOGNAME": run_as.user,
        "AWS_IOT_THING_NAME": thing_name,
        "AWS_REGION": region,
        "AWS_DEFAULT_REGION": region,
        "GG_ROOT_CA_PATH": str(root / "rootCA.pem"),
        "GGC_VERSION": NUCLEUS_VERSION,
        "SVCUID": token,
        "AWS_CONTAINER_AUTHORIZATION_TOKEN": token,
        "AWS_GG_NUCLEUS_DOMAIN_SOCKET_FILEPATH_FOR_COMPONENT": str(root / "ipc.socket"),
    }
    if TOKEN_EXCHANGE_SERVICE in dependencies:
        env["AWS_CONTAINER_CREDENTIALS_FULL_URI"] = "http://localhost:0/2016-11-01/credentialprovider/"
    return env


@dataclass
class StepCommand:
    """One lifecycle step, ready to run (variables already substituted). JSON round-trips for the supervisor."""

    component: str
    step: str
    script: str
    env: dict[str, str]
    cwd: str
    log: str
    root: str
    timeout_s: float | None = None
    skipif: str | None = None
    run_as: dict[str, Any] = field(default_factory=dict)

    def user(self) -> RunAs | None:
        return RunAs(**self.run_as) if self.run_as else None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> StepCommand:
        return cls(**data)


def should_skip(expression: str, env: dict[str, str], root: str) -> bool:
    """Skipif as the nucleus reads it; a malformed expression is an error, as there."""
    expr = expression.strip()
    negate = expr.startswith("!")
    if negate:
        expr = expr[1:].strip()
    match = SKIPIF.match(expr)
    if not match:
        raise AgentError(f"Skipif {expression!r} must be '[!]onpath EXECUTABLE' or '[!]exists FILE'")
    kind, target = match.group(1), match.group(2).strip()
    if kind == "onpath":
        found = shutil.which(target, path=env.get("PATH", DEFAULT_PATH)) is not None
    else:
        found = Path(_de_tilde(target, env.get("HOME", ""), root)).exists()
    return found != negate


def _de_tilde(path: str, home: str, root: str) -> str:
    for prefix, base in (
        ("~root/", root),
        ("~packages/", f"{root}/packages"),
        ("~config/", f"{root}/config"),
    ):
        if path.startswith(prefix):
            return f"{base}/{path[len(prefix) :]}"
    if path.startswith("~/"):
        return f"{home}/{path[2:]}"
    return path


def log_line(log_path: str | Path, component: str, message: str) -> None:
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime()) + f".{int(time.time() * 1000) % 1000:03d}Z"
    with open(log_path, "a", encoding="utf-8") as handle:
        handle.write(f"{stamp} [INFO] (edge-agent-runner) {component}: {message}\n")


def spawn(command: StepCommand, stdin: int | None = subprocess.DEVNULL) -> subprocess.Popen[bytes]:
    """Start the step's script with `sh -c` in its own process group, output appended to the log."""
    run_as = command.user()
    with open(command.log, "ab") as logfile:
        return subprocess.Popen(
            ["/bin/sh", "-c", command.script],
            cwd=command.cwd,
            env=command.env,
            stdout=logfile,
            stderr=subprocess.STDOUT,
            stdin=stdin,
            start_new_session=True,
            **(run_as.popen_kwargs() if run_as else {}),
        )


def run_foreground(command: StepCommand) -> int:
    """Run a step to its end; 0 when skipped, 124 when it timed out (its process group is then killed)."""
    if command.skipif:
        try:
            skipped = should_skip(command.skipif, command.env, command.root)
        except AgentError as exc:
            log_line(command.log, command.component, f"{command.step}: {exc}")
            return 1
        if skipped:
            log_line(command.log, command.component, f"{command.step}: skipped ({command.skipif})")
            return 0
    log_line(command.log, command.component, f"{command.step}: running script")
    process = spawn(command)
    try:
        code = process.wait(timeout=command.timeout_s)
    except subprocess.TimeoutExpired:
        terminate_group(process.pid, process)
        process.wait()
        log_line(command.log, command.component, f"{command.step}: timed out after {command.timeout_s:.0f} s")
        return TIMEOUT_EXIT
    # What the script started and left running (a startup step's daemon) keeps running, as in the nucleus.
    log_line(command.log, command.component, f"{command.step}: exited with {code}")
    return code


def terminate_group(pgid: int, leader: subprocess.Popen[bytes] | None, grace_s: float = STOP_GRACE_S) -> None:
    """SIGTERM the whole process group, wait for every member to exit, then SIGKILL."""
    for sig, wait_s in ((signal.SIGTERM, grace_s), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline and group_alive(pgid, leader):
            time.sleep(0.05)
        if not group_alive(pgid, leader):
            return


def group_alive(pgid: int, leader: subprocess.Popen[bytes] | None = None) -> bool:
    """Any live (non-zombie) process left in the group? Read from /proc, so it works whoever the parent is."""
    if leader is not None:
        leader.poll()  # reap our own leader
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[2]) == pgid and fields[0] not in ("Z", "X"):
            return True
    return False


def write_json(path: Path, document: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(document, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(tmp, path)
