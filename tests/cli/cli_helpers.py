"""What the command-line tests share: running `bytepiece` in process and checking how
it ended (a success, or one `Error:` line with the status and words expected)."""

from __future__ import annotations

from click.testing import CliRunner

from bytepiece.cli import main


def invoke(*args, input=None, runner: CliRunner | None = None):
    """`bytepiece ARGS...` in this process (click's CliRunner), exceptions caught."""
    return (runner or CliRunner()).invoke(main, [str(a) for a in args], input=input, catch_exceptions=True)


def ok(result):
    assert result.exit_code == 0, (result.exit_code, result.output, result.exception)
    return result


def fails(result, code=1, *needles, quiet_stdout: bool = False):
    """The run ended with status ``code``; with 1, its stderr is one `Error:` line and no
    traceback or --debug hint; every needle is in stderr; with ``quiet_stdout``, nothing
    went to stdout."""
    assert result.exit_code == code, (result.exit_code, result.output)
    if code == 1:
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
        assert "Traceback" not in result.output and "(run `bytepiece --debug" not in result.stderr
    for needle in needles:
        assert needle in result.stderr, (needle, result.stderr)
    if quiet_stdout:
        assert result.stdout == ""
    return result
