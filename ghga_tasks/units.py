"""Binary byte units."""

KiB = 1 << 10
MiB = 1 << 20
GiB = 1 << 30
