"""The reference Upload Controller + DRS3 server (`ghga-cli serve`, extra `ghga-tasks[server]`).

Import `ghga_tasks.server.command` for the click command; `launcher` (start a server in a
subprocess) and `stub` (a scripted DRS stub) need only the standard library; the service
modules need the extra.
"""
