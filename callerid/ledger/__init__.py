"""callerid/ledger."""
