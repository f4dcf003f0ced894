# expect: ok
# restarted: no
# timeout: 10
# Starts threads that never end (busy and sleeping); the block itself returns.
import threading
import time


def spin():
    while True:
        pass


def nap():
    while True:
        time.sleep(0.1)


for target in (spin, nap, nap):
    threading.Thread(target=target).start()
print("threads started")
