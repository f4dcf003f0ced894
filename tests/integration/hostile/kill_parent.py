# expect: ok
# restarted: no
# timeout: 10
# Tries to kill the process that started it, its process group, and everything it can reach.
import os
import signal

for what, attempt in [
    ("kill(ppid)", lambda: os.kill(os.getppid(), signal.SIGKILL)),
    ("killpg(parent group)", lambda: os.killpg(os.getpgid(os.getppid()), signal.SIGKILL)),
    ("kill(1)", lambda: os.kill(1, signal.SIGKILL)),
    ("kill(target)", lambda: os.kill(int(os.environ.get("JUPYTER_QWQ_TEST_PID", "1")), signal.SIGKILL)),
]:
    try:
        attempt()
        print(what, "sent")
    except OSError as error:
        print(what, "refused", error.__class__.__name__)
