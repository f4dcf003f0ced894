# expect: ok
# restarted: no
# timeout: 10
# Connects to a port on this machine where the test listens: the sandbox has no interface up.
import os
import socket
import time

port = int(os.environ.get("JUPYTER_QWQ_TEST_PORT", "9"))
started = time.monotonic()
try:
    socket.create_connection(("127.0.0.1", port), timeout=5).close()
    print("CONNECTED")
except OSError as error:
    print(f"blocked: {error.__class__.__name__} errno={error.errno} in {time.monotonic() - started:.3f}s")
