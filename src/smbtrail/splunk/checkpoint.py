"""Per-input checkpoints: finished files, and how many events of the current file were flushed.

Two small JSON files per input stanza in Splunk's checkpoint_dir, each replaced atomically:
- `<stanza>.done.json`: file identity key -> outcome, rewritten when a file is finished;
- `<stanza>.progress.json`: identity key and count of events already flushed for the file in work,
  rewritten after every flushed event. On restart the file is re-run (the engine is deterministic)
  and that prefix is skipped, so a kill mid-file neither loses nor re-sends events.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from typing import Any, Dict, Optional


class Checkpoints:
    def __init__(self, checkpoint_dir: str, stanza: str):
        os.makedirs(checkpoint_dir, exist_ok=True)
        safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", stanza)[:80]
        tag = hashlib.sha1(stanza.encode("utf-8")).hexdigest()[:8]
        base = os.path.join(checkpoint_dir, f"{safe}.{tag}")
        self._done_path = base + ".done.json"
        self._progress_path = base + ".progress.json"
        self._done: Dict[str, Any] = _load(self._done_path) or {}

    def is_done(self, key: str) -> bool:
        return key in self._done

    def emitted(self, key: str) -> int:
        """Events already flushed for this file by an earlier, interrupted run."""
        progress = _load(self._progress_path) or {}
        return int(progress.get("emitted", 0)) if progress.get("key") == key else 0

    def record_progress(self, key: str, emitted: int) -> None:
        _store(self._progress_path, {"key": key, "emitted": emitted})

    def finish(self, key: str, outcome: Dict[str, Any]) -> None:
        self._done[key] = outcome
        # forget files the sensor's rotation has deleted, so the map stays the size of the directory
        self._done = {k: v for k, v in self._done.items() if os.path.exists(k.rsplit("|", 3)[0])}
        _store(self._done_path, self._done)
        try:
            os.remove(self._progress_path)
        except FileNotFoundError:
            pass


def _load(path: str) -> Optional[Dict[str, Any]]:
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except FileNotFoundError:
        return None
    except ValueError:  # a torn write cannot happen with os.replace; a hand-edited file can
        return None


def _store(path: str, data: Dict[str, Any]) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as handle:
        json.dump(data, handle)
    os.replace(tmp, path)
