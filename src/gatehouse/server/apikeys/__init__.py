"""API keys: named, scoped, long-lived credentials for scripts, jobs and other servers."""
