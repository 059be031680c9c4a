"""callerid/inbox."""
