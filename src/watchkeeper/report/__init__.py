"""Self-contained HTML reports: one file, no network needed to open it."""
