"""`lumiere serve`: real server and client processes on a real Unix socket."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
FAST = ["--steps", "2", "--device", "cpu"]
PROMPT = "a red circle moving left on a black background"


def _environ(socket: Path, **extra) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("LUMIERE_WEIGHTS", "LUMIERE_NO_SERVER", "LUMIERE_DEBUG")}
    env.update({"NO_COLOR": "1", "LUMIERE_SOCKET": str(socket),
                "PYTHONPATH": os.pathsep.join(filter(None, (str(REPO), os.environ.get("PYTHONPATH"))))})
    env.update({k: str(v) for k, v in extra.items()})
    return env


def _popen(args, env, cwd, **popen) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "lumiere_cli", *map(str, args)], env=env, cwd=cwd, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, **popen)


def _run(args, env, cwd, input=None, timeout=120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "lumiere_cli", *map(str, args)], env=env, cwd=cwd, text=True,
                          capture_output=True, input=input, timeout=timeout)


def _wait_for(predicate, timeout=60.0, what="the server"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


class Server:
    def __init__(self, folder: Path, *args):
        folder.mkdir(mode=0o700, exist_ok=True)
        self.socket = folder / "serve.sock"
        self.log = folder / "server.log"
        # The server's own environment names no weights: a served command must use its caller's.
        self.proc = subprocess.Popen([sys.executable, "-m", "lumiere_cli", "serve", *args], cwd=folder,
                                     env=_environ(self.socket), stdout=subprocess.DEVNULL,
                                     stderr=open(self.log, "w"), text=True)
        _wait_for(lambda: self.socket.exists() or self.proc.poll() is not None)
        assert self.proc.poll() is None, self.log.read_text()

    def served(self) -> list[str]:
        return [line for line in self.log.read_text().splitlines() if "] lumiere " in line]

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=60)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    s = Server(tmp_path_factory.mktemp("serve") / "run")
    yield s
    s.stop()


@pytest.fixture
def client(server, tiny_weights, tmp_path):
    """The environment and folder of a command handed to the server."""
    return _environ(server.socket, LUMIERE_WEIGHTS=tiny_weights, XDG_CACHE_HOME=tmp_path / "cache"), tmp_path


def test_a_served_command_is_the_command_run_here(server, client):
    env, cwd = client
    before = len(server.served())
    served = _run(["t2v", PROMPT, "--seed", 5, "-o", "served.mp4", "--json", *FAST], env, cwd)
    assert served.returncode == 0, served.stderr
    assert len(server.served()) == before + 1  # it did run in the server
    here = _run(["t2v", PROMPT, "--seed", 5, "-o", "here.mp4", "--json", *FAST], {**env, "LUMIERE_NO_SERVER": "1"}, cwd)
    assert here.returncode == 0, here.stderr
    assert len(server.served()) == before + 1
    # Relative paths are the caller's folder; the weights are the caller's (tiny: 16x16), not the server's.
    assert (cwd / "served.mp4").read_bytes() == (cwd / "here.mp4").read_bytes()
    record = json.loads(served.stdout.splitlines()[0])
    assert record["size"] == [16, 16] and record["path"] == "served.mp4"
    assert "loading model" in served.stderr


def test_errors_and_exit_codes_come_back_as_one_line(server, client):
    env, cwd = client
    empty = _run(["t2v", "", *FAST], env, cwd)
    assert empty.returncode == 2 and empty.stderr.strip().splitlines() == [
        'error: empty prompt (describe the video, e.g. "a red circle moving left")']
    missing = _run(["i2v", PROMPT, "--image", "nope.png", *FAST], env, cwd)
    assert missing.returncode == 3 and missing.stderr.count("error:") == 1 and "Traceback" not in missing.stderr
    assert _run(["no-such-command"], env, cwd).returncode == 2


def test_stdin_and_umask_are_the_callers(server, client):
    env, cwd = client
    proc = subprocess.run(["sh", "-c", f"umask 077; exec {sys.executable} -m lumiere_cli t2v --prompts - "
                                       f"--out-dir outs --json {' '.join(FAST)}"],
                          env=env, cwd=cwd, input=f"{PROMPT}\n# a comment\na red circle\n", text=True,
                          capture_output=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    records = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [r["prompt"] for r in records] == [PROMPT, "a red circle"]
    for r in records:
        assert os.stat(cwd / r["path"]).st_mode & 0o777 == 0o600


def test_concurrent_clients(server, client):
    env, cwd = client
    procs = [_popen(["t2v", PROMPT, "--seed", i, "-o", f"c{i}.gif", "--json", *FAST], env, cwd) for i in range(3)]
    results = [(p.wait(timeout=120), p.stdout.read(), p.stderr.read()) for p in procs]
    assert all(code == 0 for code, _, _ in results), results
    assert sorted(p.name for p in cwd.glob("c*.gif")) == ["c0.gif", "c1.gif", "c2.gif"]


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name != "cache")


def test_ctrl_c_reaches_the_served_command(server, client):
    env, cwd = client
    proc = _popen(["t2v", PROMPT, "-o", "long.mp4", "--steps", 1000, "--device", "cpu"], env, cwd)
    _wait_for(lambda: any("long.mp4" in line for line in server.served()), what="the command to start")
    time.sleep(1.0)
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=60) == 130
    assert "error: interrupted" in proc.stderr.read()
    assert _leftovers(cwd) == []  # nothing half-written


def test_a_vanished_client_stops_its_command(server, client):
    env, cwd = client
    proc = _popen(["t2v", PROMPT, "-o", "orphan.mp4", "--steps", 1000, "--device", "cpu"], env, cwd)
    _wait_for(lambda: any("orphan.mp4" in line for line in server.served()), what="the command to start")
    time.sleep(0.5)
    proc.kill()
    proc.wait()
    pid = next(line for line in server.served() if "orphan.mp4" in line).split("]")[0].lstrip("[")
    _wait_for(lambda: f"[{pid}] exit 130" in server.log.read_text(), what="the orphan to stop")
    assert _leftovers(cwd) == []


def test_code_that_changed_runs_here(server, client, monkeypatch, capsys):
    from lumiere_cli.serve import client as serve_client

    monkeypatch.setenv("LUMIERE_SOCKET", str(server.socket))
    monkeypatch.setattr(serve_client, "code_stamp", lambda: "another version")
    warnings = []
    assert serve_client.forward(["info"], warn=warnings.append) is None
    assert len(warnings) == 1 and "runs other code" in warnings[0]
    assert serve_client.forward(["serve", "--status"], warn=warnings.append) is None  # never served


def test_status_one_server_per_socket_and_stop(tmp_path, tiny_weights):
    s = Server(tmp_path / "run")
    try:
        env = _environ(s.socket)
        status = _run(["serve", "--status", "--json"], env, tmp_path)
        assert status.returncode == 0 and json.loads(status.stdout)["pid"] == s.proc.pid
        second = _run(["serve"], env, tmp_path)
        assert second.returncode == 2 and "already runs" in second.stderr and "Traceback" not in second.stderr
        stop = _run(["serve", "--stop"], env, tmp_path)
        assert stop.returncode == 0 and f"pid {s.proc.pid}" in stop.stdout
        assert s.proc.wait(timeout=60) == 0
        assert not s.socket.exists()
        assert _run(["serve", "--stop"], env, tmp_path).returncode == 1
        none = _run(["serve", "--status", "--json"], env, tmp_path)
        assert json.loads(none.stdout)["running"] is False
        # With no server, commands run in their own process as before.
        alone = _run(["t2v", PROMPT, "-o", "alone.gif", *FAST], {**env, "LUMIERE_WEIGHTS": str(tiny_weights)}, tmp_path)
        assert alone.returncode == 0 and (tmp_path / "alone.gif").exists()
    finally:
        s.stop()


def test_idle_limit_and_a_shared_folder(tmp_path):
    s = Server(tmp_path / "idle", "--idle-exit", "0.02")
    assert s.proc.wait(timeout=60) == 0 and "idle" in s.log.read_text()
    hung_up = Server(tmp_path / "hup")  # its terminal closed
    hung_up.proc.send_signal(signal.SIGHUP)
    assert hung_up.proc.wait(timeout=60) == 0 and not hung_up.socket.exists()
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o755)
    shared.chmod(0o755)
    r = _run(["serve"], _environ(shared / "serve.sock"), tmp_path)
    assert r.returncode == 2 and "must belong to you alone" in r.stderr


def test_a_command_outlives_a_killed_server(tmp_path, tiny_weights):
    s = Server(tmp_path / "run")
    env = _environ(s.socket, LUMIERE_WEIGHTS=tiny_weights, XDG_CACHE_HOME=tmp_path / "cache")
    out = tmp_path / "work"
    out.mkdir()
    proc = _popen(["t2v", PROMPT, "-o", "late.gif", "--steps", 300, "--device", "cpu"], env, out)
    _wait_for(lambda: any("late.gif" in line for line in s.served()), what="the command to start")
    s.proc.kill()
    s.proc.wait()
    assert proc.wait(timeout=120) == 0, proc.stderr.read()
    assert (out / "late.gif").exists()


def test_the_default_weights_read_ahead_give_the_same_clip(server, tmp_path):
    """The server reads the default weights before it forks; a command on them gets the clip a
    process of its own makes, byte for byte."""
    env = _environ(server.socket, XDG_CACHE_HOME=tmp_path / "cache")  # no LUMIERE_WEIGHTS: the shipped ones
    args = ["t2v", PROMPT, "--seed", 2, "--steps", 1, "--base-only", "--device", "cpu"]
    before = len(server.served())
    assert _run([*args, "-o", "served.mp4"], env, tmp_path).returncode == 0
    assert len(server.served()) == before + 1
    assert _run([*args, "-o", "here.mp4"], {**env, "LUMIERE_NO_SERVER": "1"}, tmp_path).returncode == 0
    assert (tmp_path / "served.mp4").read_bytes() == (tmp_path / "here.mp4").read_bytes()


def test_a_model_read_ahead_is_taken_once_and_only_for_the_unchanged_file(tiny_weights, tmp_path):
    import shutil

    from lumiere_cli.weights import load_model, read_ahead, resolve

    path = tmp_path / "model.safetensors"
    shutil.copy(resolve(tiny_weights), path)
    ahead = load_model(path)
    read_ahead(path, ahead)
    assert load_model(path) is ahead and load_model(path) is not ahead  # once
    read_ahead(path, ahead)
    os.utime(path, ns=(1, 1))  # the file changed since: read afresh
    assert load_model(path) is not ahead
