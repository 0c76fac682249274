"""Where units of work run: in this process, or on Ray workers (several GPUs or machines)."""
