"""The network pipeline: captures (through tshark) and Zeek logs -> protocol state -> network records.

pipeline.py  every input file: expanded, read by tshark, its frames fed to the analyzer; failures contained
analyzer.py  one capture's frames dispatched to the protocol handlers, and the records their events become
"""
