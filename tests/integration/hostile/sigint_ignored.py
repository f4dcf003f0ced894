# expect: timeout
# restarted: yes
# timeout: 2
# Ignores the interrupt: the kernel is killed, restarted, and earlier blocks are replayed.
import signal

signal.signal(signal.SIGINT, signal.SIG_IGN)
while True:
    pass
