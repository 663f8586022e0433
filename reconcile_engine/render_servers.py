"""Rendering of `reconcile server status` and `reconcile server stop` (server_command.ServerReport): text or JSON."""

from __future__ import annotations

import json

from .server_command import EmbeddedServerState, ServerReport

FORMATS = ("text", "json")


def render(report: ServerReport, format: str) -> str:
    if format == "json":
        return json.dumps(report.to_dict(), indent=2)
    if not report.servers:
        return f"No embedded server: none was made for this project yet (its data folder: {report.target_data_dir})."
    if report.action == "stop":
        return "\n".join(_stopped(s) for s in report.servers)
    return "\n".join(_status(s) for s in report.servers)


def _stopped(state: EmbeddedServerState) -> str:
    if state.stopped:
        return f"stopped the embedded server ({state.role}) in {state.data_dir}"
    return f"no embedded server ({state.role}) was running in {state.data_dir}"


def _status(state: EmbeddedServerState) -> str:
    if not state.running:
        return f"embedded server ({state.role}): not running; data folder {state.data_dir}"
    where = f"socket {state.socket_dir}, port {state.port}" if state.socket_dir else f"port {state.port}"
    lines = [f"embedded server ({state.role}): running, pid {state.pid}, {where}; data folder {state.data_dir}"]
    if state.in_use_by:
        lines.append("  in use by " + "; ".join(state.in_use_by))
    lines.append(f"  idle timer: {_idle(state)}")
    return "\n".join(lines)


def _idle(state: EmbeddedServerState) -> str:
    if state.idle_seconds is None:
        return "no command recorded a use: it stays up until 'reconcile server stop'"
    if state.idle_seconds == 0:
        return "stops at the end of each command (idle time 0)"
    rule = f"stops after {_duration(state.idle_seconds)} without a command"
    if state.in_use_by:
        return rule + " (counted from the end of the commands using it)"
    left = max(0.0, state.idle_seconds - (state.unused_for_seconds or 0.0))
    return f"{rule}; last used {_duration(state.unused_for_seconds or 0.0)} ago, stops in about {_duration(left)}"


def _duration(seconds: float) -> str:
    if seconds >= 120:
        return f"{seconds / 60:.0f} min"
    return f"{seconds:.0f} s"
