"""What the tests share and that is not a test: engine runs cached for the session, capture rows fed to the
protocol state machines, Splunk as the tests drive it, Zeek logs derived from a capture, fuzz targets."""
