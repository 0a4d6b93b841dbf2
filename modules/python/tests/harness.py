"""Real processes for the end-to-end tests: example modules (and, when the
Rust binary is at hand, built-in ones) started by hand with a made-up launch
contract, on 127.0.0.1 only, each killed when its test ends however it ends."""

import ctypes
import os
import queue
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import json

PYTHON_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXAMPLES = os.path.join(PYTHON_DIR, "examples")

# The built-in modules' binary, given by the Rust test that runs these tests
# (modules/tests/modules/python.rs); interoperability tests need it.
RUST_BIN = os.environ.get("MGR_MODULES_BIN") or None

# A generous bound for anything that should take milliseconds: the machines
# that run the tests are small and shared.
TIMEOUT = 15.0


def free_addrs(n, host="127.0.0.1"):
    """`n` free loopback addresses (bound to port 0, then closed again
    before the instances bind them); `host` "::1" for IPv6."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sockets = [socket.socket(family, socket.SOCK_DGRAM) for _ in range(n)]
    try:
        for s in sockets:
            s.bind((host, 0))
        shown = "[%s]" % host if family == socket.AF_INET6 else host
        return ["%s:%d" % (shown, s.getsockname()[1]) for s in sockets]
    finally:
        for s in sockets:
            s.close()


def _die_with_parent():
    # Linux: the instance gets SIGKILL when the test process dies, so that
    # even a killed test run leaves nothing behind.
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except Exception:
        pass


class Proc:
    """A running instance: its stdin, and its stdout lines in a queue."""

    def __init__(self, argv, env, stdin=True, pass_fds=()):
        self.popen = subprocess.Popen(
            argv,
            env=env,
            stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            pass_fds=pass_fds,
            preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,
        )
        self.lines = queue.Queue()
        self.stderr = []
        self.seen = []
        threading.Thread(target=self._pump, args=(self.popen.stdout, self.lines.put), daemon=True).start()
        threading.Thread(target=self._pump, args=(self.popen.stderr, self.stderr.append), daemon=True).start()

    @staticmethod
    def _pump(stream, put):
        for raw in iter(stream.readline, b""):
            put(raw.decode("utf-8", "replace").rstrip("\n"))

    def type(self, line):
        self.popen.stdin.write((line + "\n").encode())
        self.popen.stdin.flush()

    def close_stdin(self):
        self.popen.stdin.close()

    def wait_for(self, want, timeout=TIMEOUT):
        """Waits for the line `want`; returns True, or False after `timeout`."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            try:
                line = self.lines.get(timeout=left)
            except queue.Empty:
                return False
            self.seen.append(line)
            if line == want:
                return True

    def wait_all(self, wanted, timeout=TIMEOUT):
        """Waits until every line of `wanted` came, in any order; returns
        those still missing."""
        missing = list(wanted)
        deadline = time.monotonic() + timeout
        while missing:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            try:
                line = self.lines.get(timeout=left)
            except queue.Empty:
                break
            self.seen.append(line)
            if line in missing:
                missing.remove(line)
        return missing

    def during(self, seconds):
        """Every line printed in the next `seconds`."""
        deadline = time.monotonic() + seconds
        got = []
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return got
            try:
                line = self.lines.get(timeout=left)
            except queue.Empty:
                return got
            self.seen.append(line)
            got.append(line)

    def kill(self):
        if self.popen.poll() is None:
            self.popen.kill()
        self.popen.wait()
        for stream in (self.popen.stdin, self.popen.stdout, self.popen.stderr):
            try:
                if stream:
                    stream.close()
            except OSError:
                pass

    def exit_code(self, timeout=TIMEOUT):
        return self.popen.wait(timeout=timeout)


def contract_env(name, addrs, events=None, **extra):
    """The launch contract of instance `name` (p1, p2...) of a run whose
    instances are at `addrs`, plus `extra` variables."""
    index = int(name[1:]) - 1
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "MGR_RUN": "test",
        "MGR_SELF": name,
        "MGR_ADDR": addrs[index],
        "MGR_PEERS": ",".join("p%d=%s" % (i + 1, a) for i, a in enumerate(addrs)),
        "MGR_MEMBER": "m1",
        # The examples find the SDK beside them; tests of an installed
        # package would set PYTHONPATH themselves.
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    if events is not None:
        env["MGR_EVENTS"] = events
    env.update({k: str(v) for k, v in extra.items()})
    return env


def example(script):
    return [sys.executable, "-u", os.path.join(EXAMPLES, script)]


def library(module):
    return [sys.executable, "-u", "-m", "mgr_module", module]


def library_env(env):
    env = dict(env)
    env["PYTHONPATH"] = PYTHON_DIR
    return env


def read_events(path):
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


class TempDir:
    def __init__(self):
        self._dir = tempfile.TemporaryDirectory(prefix="mgr-python-")
        self.path = self._dir.name

    def file(self, name):
        return os.path.join(self.path, name)

    def cleanup(self):
        self._dir.cleanup()
