"""callerid/ingest."""
