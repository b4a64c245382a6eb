"""Record writers: jsonl for machines, table for people (html lives in output/html.py)."""
