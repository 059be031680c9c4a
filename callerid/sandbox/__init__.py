"""callerid/sandbox."""
