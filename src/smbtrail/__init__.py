"""smbtrail: command trails of Windows lateral movement from SMB/MS-RPC captures and event logs."""

__version__ = "0.1.0"
