"""What SMB3 encryption would leave of a trail: offline tools over the user's own cleartext captures that run
the engine on them, not parts of it.

rewrite.py   a capture rewritten as a sensor would see it under share-only or server-wide encryption
             (`smbtrail whatif`); its parts:
pcapfile.py    pcap/pcapng records read and written back, damage copied and named
tcp.py         link/IP/TCP headers, SMB connections reassembled, packets rebuilt with shifted sequence numbers
smb2.py        NBSS/SMB2 framing, which messages a scope encrypts, transform headers and flags
coverage.py  the coverage report (`smbtrail coverage`): which commands of the cleartext trail each setting
             leaves to the network alone and to the network fused with host logs
"""
