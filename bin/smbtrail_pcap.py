"""Modular input smbtrail_pcap:// (Splunk runs bin/<scheme>.py); the work is in smbtrail.splunk.modinput."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))

from smbtrail.splunk.modinput import PcapInput, main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(PcapInput, sys.argv))
