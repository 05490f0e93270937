"""``mpswarm replay LOGFILE -H URL``: an access log's requests, each at its original offset.

Formats: nginx/Apache *combined* and *common* (``--log-format combined|common``, the default
``auto`` tells them apart by line) and JSON lines (``--log-format json``, with
``--json-fields time=FIELD,method=FIELD,path=FIELD``; ``request`` may replace ``method`` and
``path`` with a whole request line; ``time`` is epoch seconds or ISO 8601).

The log is streamed, never held: the parent reads it once to count what it will send (and
what it skips, and why) and how long it lasts; each worker reads it again and keeps every
K-th request (K workers), so memory does not grow with the log. The requests run in the open
model: line i is due at ``start + offset_i / speed``; a request that finds no free user under
``--max-users`` is dropped and counted, and response times are corrected for any lateness
(the uncorrected ones are kept too). A worker that replaces a dead one resumes the share at
the current time: what fell due meanwhile is counted as dropped, never sent twice.

A log is input from outside, read as hostile: every request goes to ``-H`` (a line whose
target is an absolute URL, ``http://elsewhere/x``, or a network-path one, ``//elsewhere/x``,
is replayed as its path, ``/x``, to ``-H``, and counted; redirects are not followed: the log
holds the request that followed, if there was one); a line longer than ``MAX_LINE`` characters
is skipped without being held, and counted; a quiet stretch longer than ``--max-gap`` (an
hour by default) is shortened to it, and counted; a JSON line too deeply nested to parse is
unparsable. ``-t`` ends the replay early.

Request names are templated so that IDs do not explode the table: a path segment of digits
becomes ``{id}``, a UUID ``{uuid}``, a hex string of 8 or more with a digit ``{hash}``
(``--name-rule REGEX=NAME`` adds rules, tried first); the query string is left out of the
name, not out of the request.
"""

from __future__ import annotations

import dataclasses
import datetime
import io
import json
import math
import re
from collections.abc import Callable, Iterator
from typing import Any

from mpswarm._input import open_regular
from mpswarm.exceptions import UsageError

#: Methods replayed by default: those without a body, which a log does not hold.
DEFAULT_METHODS = ("GET", "HEAD")
_CLF = re.compile(
    r'^\S+ \S+ \S+ \[(?P<time>[^\]]+)\] "(?P<method>[A-Z]+) (?P<path>\S+)(?: [^"]*)?" '
    r"\d{3} \S+(?P<combined> \"[^\"]*\" \"[^\"]*\")?"
)
_CLF_TIME = "%d/%b/%Y:%H:%M:%S %z"
#: The longest log line read (characters): nginx refuses a request line over 8 KiB by
#: default, so a real line with its referer and agent is far shorter.
MAX_LINE = 64 * 1024
#: The longest quiet stretch between two requests replayed, by default (log seconds).
DEFAULT_MAX_GAP_S = 3600.0
#: A request target's scheme and authority (``http://host:port``) or authority alone (``//h``).
_AUTHORITY = re.compile(r"^(?:[A-Za-z][A-Za-z0-9+.-]*:)?//[^/?#]*")
#: A worker's parse yields to its event loop this often (lines; ~2 ms of parsing).
_PAUSE_LINES = 100
_LAST: list[Any] = ["", 0.0]  # the last time text parsed, and its epoch seconds
_BUILTIN_RULES = (
    (re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"),
     "{uuid}"),
    (re.compile(r"^\d+$"), "{id}"),
    (re.compile(r"^(?=[0-9a-fA-F]*\d)[0-9a-fA-F]{8,}$"), "{hash}"),
)  # fmt: skip


@dataclasses.dataclass(frozen=True)
class ReplaySpec:
    """What to replay; travels to the workers as a dict (``as_dict``)."""

    path: str
    log_format: str = "auto"
    json_fields: tuple[tuple[str, str], ...] = (("time", "time"), ("method", "method"),
                                                 ("path", "path"))  # fmt: skip
    speed: float = 1.0
    start_s: float | None = None  # --from, seconds after the log's first request
    end_s: float | None = None  # --to
    methods: tuple[str, ...] = DEFAULT_METHODS
    name_rules: tuple[tuple[str, str], ...] = ()
    max_gap_s: float = DEFAULT_MAX_GAP_S  # --max-gap: longer quiet stretches are shortened

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ReplaySpec:
        fields = {field.name for field in dataclasses.fields(cls)}
        data = {key: value for key, value in data.items() if key in fields}  # not "counts"
        for key in ("json_fields", "methods", "name_rules"):
            data[key] = tuple(tuple(v) if isinstance(v, list) else v for v in data[key])
        return cls(**data)


@dataclasses.dataclass(frozen=True)
class Entry:
    """One request to replay: its offset (s, after speed) from the first, method, URL, name."""

    offset_s: float
    method: str
    path: str
    name: str


@dataclasses.dataclass
class Counts:
    """What a pass over the log found."""

    sent: int = 0
    unparsable: int = 0
    other_method: int = 0
    outside_range: int = 0
    too_long: int = 0  # lines over MAX_LINE characters, skipped
    absolute: int = 0  # targets with a host of their own, sent as their path to -H
    gaps_shortened: int = 0  # quiet stretches over --max-gap, shortened to it
    duration_s: float = 0.0  # from the first request replayed to the last, after speed


def _epoch(text: str, fmt: str | None) -> float:
    if fmt is not None:  # a log's lines share their second: strptime (~20 us) once per second
        if text != _LAST[0]:
            _LAST[:] = [text, datetime.datetime.strptime(text, fmt).timestamp()]
        return float(_LAST[1])
    try:
        return float(text)
    except ValueError:
        return datetime.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def _parse(line: str, spec: ReplaySpec) -> tuple[float, str, str] | None:
    """(epoch seconds, method, path) of a log line, None when it is not a request line."""
    kind = spec.log_format
    try:
        if kind in ("auto", "combined", "common"):
            match = _CLF.match(line)
            if match is None or (kind == "combined" and not match["combined"]):
                return None
            return _epoch(match["time"], _CLF_TIME), match["method"], match["path"]
        record = json.loads(line)
        fields = dict(spec.json_fields)
        if "request" in fields:
            method, path, *_ = str(record[fields["request"]]).split(" ")
        else:
            method, path = str(record[fields["method"]]), str(record[fields["path"]])
        stamp = record[fields["time"]]
        return (float(stamp) if isinstance(stamp, (int, float)) else _epoch(str(stamp), None),
                method.upper(), path)  # fmt: skip
    except (ValueError, KeyError, TypeError, AttributeError, RecursionError):
        return None  # (RecursionError: JSON nested deeper than the parser goes)


class Namer:
    """Request names with IDs templated (see the module docstring)."""

    def __init__(self, rules: tuple[tuple[str, str], ...]) -> None:
        try:
            self.rules = [(re.compile(pattern), name) for pattern, name in rules]
        except re.error as exc:
            raise UsageError(f"--name-rule: not a regular expression: {exc}") from None
        self._cache: dict[str, str] = {}

    def __call__(self, path: str) -> str:
        found = self._cache.get(path)
        if found is None:
            bare = path.split("?", 1)[0]
            for pattern, name in self.rules:
                if pattern.search(bare):
                    found = name
                    break
            else:
                found = "/".join(_segment(part) for part in bare.split("/"))
            if len(self._cache) < 65536:
                self._cache[path] = found
        return found


def _segment(part: str) -> str:
    for pattern, name in _BUILTIN_RULES:
        if pattern.match(part):
            return name
    return part


def entries(
    spec: ReplaySpec, counts: Counts | None = None, pause: Callable[[], Any] | None = None
) -> Iterator[Entry]:
    """The log's requests to replay, streamed, in the log's order.

    A log with whole-second times (nginx's and Apache's) says nothing finer: the requests of
    one second are spread evenly over it, not sent in one burst at its start (only one
    second's requests are held at a time).
    """
    second: list[Entry] = []
    for entry in _timed(spec, counts if counts is not None else Counts(), pause):
        if second and (entry.offset_s != second[0].offset_s or not entry.offset_s.is_integer()):
            yield from _spread(second, spec.speed)
            second = []
        if entry.offset_s.is_integer():
            second.append(entry)
        else:
            yield dataclasses.replace(entry, offset_s=entry.offset_s / spec.speed)
    yield from _spread(second, spec.speed)


def _spread(second: list[Entry], speed: float) -> Iterator[Entry]:
    for k, entry in enumerate(second):
        yield dataclasses.replace(entry, offset_s=(entry.offset_s + k / len(second)) / speed)


def _timed(spec: ReplaySpec, counts: Counts, pause: Callable[[], Any] | None) -> Iterator[Entry]:
    """The requests with their offsets in the log's own seconds (before --speed); ``pause()``
    every ``_PAUSE_LINES`` lines (a worker's event loop must not wait for a long parse)."""
    namer = Namer(spec.name_rules)
    methods = set(spec.methods)
    first: float | None = None
    last: float | None = None  # the log time of the last request replayed
    cut = 0.0  # seconds taken out of quiet stretches so far (whole seconds)
    for number, line in enumerate(_lines(spec.path, counts)):
        if pause is not None and number % _PAUSE_LINES == 0:
            pause()
        if not line.strip():
            continue
        parsed = _parse(line, spec)
        if parsed is None:
            counts.unparsable += 1
            continue
        stamp, method, target = parsed
        path = _path_of(target)
        if path is None:
            counts.unparsable += 1
            continue
        if first is None:
            first = stamp
        since = stamp - first
        if (spec.start_s is not None and since < spec.start_s) or (
            spec.end_s is not None and since > spec.end_s
        ):
            counts.outside_range += 1
            continue
        if method not in methods:
            counts.other_method += 1
            continue
        if last is not None and since - last > spec.max_gap_s:
            cut += math.floor(since - last - spec.max_gap_s)  # whole seconds stay whole
            counts.gaps_shortened += 1
        last = since
        counts.absolute += path is not target
        offset = since - (spec.start_s or 0.0) - cut
        counts.sent += 1
        counts.duration_s = max(counts.duration_s, (offset + 1.0) / spec.speed)
        yield Entry(offset, method, path, namer(path))


def _lines(path: str, counts: Counts) -> Iterator[str]:
    """The log's lines; one longer than ``MAX_LINE`` is skipped as it is read (never held
    whole) and counted."""
    # A regular file only: a FIFO would block, /dev/zero never end, and the log is read twice.
    with io.TextIOWrapper(open_regular(path), encoding="utf-8", errors="replace") as handle:
        while line := handle.readline(MAX_LINE + 1):
            if len(line) <= MAX_LINE or line.endswith("\n"):
                yield line
                continue
            counts.too_long += 1
            while (rest := handle.readline(MAX_LINE)) and not rest.endswith("\n"):
                pass


def _path_of(target: str) -> str | None:
    """The path (and query) a log line's request target is replayed as, to ``-H``: an
    absolute URL's or a network-path reference's own path; None for a target that is no path
    (``*``, ``host:443``)."""
    if target.startswith("/") and not target.startswith("//"):
        return target
    authority = _AUTHORITY.match(target)
    if authority is None:
        return None
    path = target[authority.end() :]
    return path if path.startswith("/") else "/" + path


class ReplaySchedule:
    """A worker's share of the log as a Schedule (``next_at``, ``pop``): every ``workers``-th
    request from ``index``, due at ``start + offset`` (monotonic seconds)."""

    kind = "replay"
    rate = 0.0

    def __init__(self, spec: ReplaySpec, start: float, index: int, workers: int) -> None:
        import gevent

        every = enumerate(entries(spec, pause=lambda: gevent.sleep(0)))
        self._entries = (e for i, e in every if i % workers == index)
        self._start = start
        self.current: Entry | None = None
        self._next: Entry | None = None
        self.next_at = float("inf")
        self._advance()

    def _advance(self) -> None:
        self._next = next(self._entries, None)
        self.next_at = self._start + self._next.offset_s if self._next else float("inf")

    def pop(self) -> float:
        """The next due time; ``current`` is its request."""
        due, self.current = self.next_at, self._next
        self._advance()
        return due

    def set_rate(self, rate: float, now: float) -> None:
        """The log sets the times: a rate does not apply."""
