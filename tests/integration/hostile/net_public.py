# expect: ok
# restarted: no
# timeout: 10
# A connection to a public address (192.0.2.1, TEST-NET-1: documentation only, never routed,
# so even an unsandboxed run sends nothing anywhere real). It must fail at once.
import socket
import time

started = time.monotonic()
try:
    socket.create_connection(("192.0.2.1", 80), timeout=5).close()
    print("CONNECTED")
except OSError as error:
    print(f"blocked: {error.__class__.__name__} errno={error.errno} in {time.monotonic() - started:.3f}s")
