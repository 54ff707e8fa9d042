"""The README's walkthrough: `examples/zombie_agent.py` against `agentwatch serve` ends
in a zombie_run finding that names the hung tool call, and resolves when it ends."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.harness import AgentwatchProcess, http, wait_for


def findings(server: AgentwatchProcess, **params: Any) -> list[dict[str, Any]]:
    response = http().get(f"{server.endpoints['api']}/api/v1/findings", params=params, timeout=10)
    assert response.status_code == 200, response.text
    found: list[dict[str, Any]] = response.json()["findings"]
    return found


def _sigint_as_from_a_terminal() -> None:
    """In the agent, before it starts: SIGINT at its default, as a shell gives it.

    A child inherits an ignored SIGINT, and a test run started in the background by a
    non-interactive shell (`make test &`, nohup) has SIGINT ignored: the agent then
    ignored the test's Ctrl-C (seen with faulthandler: still polling 90 s later).
    """
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_the_zombie_agent_example_is_found_and_resolves(tmp_path: Path) -> None:
    config = tmp_path / "agentwatch.yaml"
    config.write_text('detectors:\n  zombie_run: {min_idle: "3s"}\n')  # README: 2 min
    server = AgentwatchProcess(tmp_path / "data", "--config", str(config)).start()
    endpoint = server.endpoints["otlp_grpc"]
    agent = subprocess.Popen(
        [sys.executable, "-X", "faulthandler", "examples/zombie_agent.py", "--endpoint", endpoint],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=_sigint_as_from_a_terminal,
    )
    try:
        (zombie,) = wait_for(lambda: findings(server, kind="zombie_run", state="open"), 90)
        assert zombie["agent_name"] == "support-agent"
        assert zombie["tool_name"] == "crm.lookup"
        assert agent.poll() is None  # the process is alive: a zombie, not a crash

        agent.send_signal(signal.SIGINT)
        # It exports what is left before exiting; a hang shows every thread's stack.
        try:
            output, errors = agent.communicate(timeout=90)
        except subprocess.TimeoutExpired:
            agent.send_signal(signal.SIGABRT)  # faulthandler prints the stacks
            output, errors = agent.communicate(timeout=30)
            raise AssertionError(f"still running after Ctrl-C: {output}\n{errors}") from None
        assert agent.returncode == 0, errors
        resolved = wait_for(lambda: findings(server, kind="zombie_run", state="resolved"), 90)
        assert resolved[0]["id"] == zombie["id"]
    finally:
        if agent.poll() is None:
            agent.kill()
        server.kill()
    assert "step 4 done" in output
