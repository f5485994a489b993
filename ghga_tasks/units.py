"""Binary byte units."""

MiB = 1 << 20
GiB = 1 << 30
