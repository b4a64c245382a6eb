"""Splunk adapters: modular inputs and the fusion search command. The engine never imports these."""
