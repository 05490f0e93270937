from __future__ import annotations

import io

from mpswarm.report.live import LiveStatus, RunInfo, status_lines
from mpswarm.stats.window import History


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_status_content(snapshot) -> None:
    history = History()
    history.add(snapshot)
    info = RunInfo(elapsed_s=10, run_time_s=40, target_users=8, worker_cpu=[(0, 55.0), (1, 7.0)])
    text = "\n".join(status_lines(snapshot, history.window(), info))
    assert "0:00:10 / 0:00:40" in text and "25%" in text and "[#######" in text
    assert "users 5/8" in text and "requests 200" in text and "failures 10 (5.00%)" in text
    assert "20.0 req/s" in text and "1.0 failures/s" in text and "p95" in text
    assert "w0:  55%" in text and "w1:   7%" in text
    unbounded = "\n".join(status_lines(snapshot, None, RunInfo(5, None, 8, [])))
    assert "until stopped" in unbounded


def test_terminal_redraws_in_place_and_logs_append(snapshot) -> None:
    info = RunInfo(elapsed_s=2, run_time_s=None, target_users=5, worker_cpu=[])
    terminal = Terminal()
    live = LiveStatus(terminal)
    assert live.interval == 2.0
    live.show(snapshot, None, info)
    live.show(snapshot, None, info)
    output = terminal.getvalue()
    assert output.count("\x1b[4F") == 1  # the second block moves up over the first
    assert output.count("\x1b[2K") == 8
    log = io.StringIO()
    plain = LiveStatus(log, interval=10)
    assert plain.due(0) and plain.interval == 10
    plain.show(snapshot, None, info)
    assert not plain.due(5) and plain.due(12)
    assert log.getvalue().count("\n") == 1 and "\x1b" not in log.getvalue()
