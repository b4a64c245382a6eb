"""Search command smbtrailfuse (chunked protocol v2); the work is in smbtrail.splunk.fusecommand."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))

from splunklib.searchcommands import dispatch  # noqa: E402

from smbtrail.splunk.fusecommand import SmbtrailFuseCommand  # noqa: E402

if __name__ == "__main__":
    dispatch(SmbtrailFuseCommand, sys.argv, sys.stdin, sys.stdout, __name__)
