"""Reading flagged decisions back: audit records from files or topics."""
