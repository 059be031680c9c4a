"""callerid/plivo."""
