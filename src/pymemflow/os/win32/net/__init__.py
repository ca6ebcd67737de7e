"""tcpip.sys endpoint layouts per Windows build (a generated table, see :mod:`.layouts`)."""
