"""The reference Upload Controller + DRS3 server (`ghga-cli serve`, extra `ghga-tasks[server]`).

Import `ghga_tasks.server.command` for the click command; the other modules need the extra.
"""
