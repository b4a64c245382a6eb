"""Per-host clock offsets, estimated from exact ip:port joins and applied before any time join.

offset = host event time - capture time of the same logon. It holds the collector lag (0.5-12 s in
the OTRF pairs) and any clock or time-zone error (the `schtask_create` pair logs local time as UTC:
-5 h). A host with no exact join yet takes the median of the hosts that have one (one collector
usually stamps every host the same way), else 0.
"""

from __future__ import annotations

from statistics import median
from typing import Dict, List, Optional

KEEP = 64  # samples per host: enough for a stable median, bounded memory


class Clocks:
    def __init__(self) -> None:
        self._samples: Dict[str, List[float]] = {}
        self._cache: Dict[str, float] = {}

    def add(self, host: Optional[str], host_time: float, net_time: float) -> None:
        if not host:
            return
        samples = self._samples.setdefault(host, [])
        samples.append(host_time - net_time)
        if len(samples) > KEEP:
            del samples[0]
        self._cache.pop(host, None)
        self._cache.pop("", None)

    def known(self, host: Optional[str]) -> bool:
        return bool(host) and host in self._samples

    def offset(self, host: Optional[str]) -> float:
        key = host if host in self._samples else ""
        if key not in self._cache:
            if key:
                self._cache[key] = median(self._samples[key])
            else:
                per_host = [median(s) for s in self._samples.values()]
                self._cache[key] = median(per_host) if per_host else 0.0
        return self._cache[key]

    def to_capture_time(self, host: Optional[str], host_time: float) -> float:
        return host_time - self.offset(host)

    def summary(self) -> Dict[str, float]:
        return {host: round(self.offset(host), 3) for host in sorted(self._samples)}
