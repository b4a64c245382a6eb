"""Per-host clock offsets, estimated from exact ip:port joins and applied before any time join.

offset = host event time - capture time of the same logon. It holds the collector lag (0.5-12 s in
the OTRF pairs) and any clock or time-zone error (the `schtask_create` pair logs local time as UTC:
-5 h). Offsets are kept per host and hour, so a clock that is set right later (or a second data set
of the same host recorded elsewhere) gets its own offset: the offset used at a time is the median
of the nearest hour with samples. A host with no exact join yet takes the median of all hosts at
that hour (one collector usually stamps every host the same way), else 0. Hours that fell behind
the join window are dropped; a host keeps the offset of its last one (`forget_before`).
"""

from __future__ import annotations

from bisect import bisect_left, insort
from statistics import median
from typing import Dict, List, Optional, Tuple

HOUR = 3600.0
KEEP = 16  # samples per host and hour: enough for a stable median, bounded memory
ANY = ""  # the pseudo-host that collects every sample


class Clocks:
    def __init__(self) -> None:
        self._samples: Dict[Tuple[str, int], List[float]] = {}
        self._hours: Dict[str, List[int]] = {}  # host -> sorted hours with samples
        self._settled: Dict[str, float] = {}  # host -> offset of its last hour once that hour is dropped
        self._cache: Dict[Tuple[str, int], float] = {}

    def add(self, host: Optional[str], host_time: float, net_time: float) -> None:
        if not host:
            return
        hour = int(host_time // HOUR)
        for key in (host, ANY):
            samples = self._samples.setdefault((key, hour), [])
            if not samples:
                insort(self._hours.setdefault(key, []), hour)
            samples.append(host_time - net_time)
            if len(samples) > KEEP:
                del samples[0]
        self._cache.clear()

    def forget_before(self, host_time: float) -> None:
        """Drop the samples of hours before `host_time` (samples arrive about in time order)."""
        hour = int(host_time // HOUR)
        while self._samples:
            (key, first), samples = next(iter(self._samples.items()))
            if first >= hour:
                break
            del self._samples[(key, first)]
            hours = self._hours[key]
            hours.remove(first)
            if not hours:
                del self._hours[key]
                self._settled[key] = median(samples)
        self._cache.clear()

    def offset(self, host: Optional[str], host_time: float) -> float:
        key = host if host and (host in self._hours or host in self._settled) else ANY
        hour = int(host_time // HOUR)
        cached = self._cache.get((key, hour))
        if cached is None:
            cached = self._cache[(key, hour)] = self._offset(key, hour)
        return cached

    def _offset(self, key: str, hour: int) -> float:
        hours = self._hours.get(key)
        if not hours:
            return self._settled.get(key, 0.0)
        at = bisect_left(hours, hour)
        nearest = min(hours[max(0, at - 1): at + 1], key=lambda h: abs(h - hour))
        return median(self._samples[(key, nearest)])

    def to_capture_time(self, host: Optional[str], host_time: float) -> float:
        return host_time - self.offset(host, host_time)
