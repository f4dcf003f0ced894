# expect: ok|timeout|crashed
# restarted: any
# timeout: 15
# Prints a gigabyte: the output kept is capped, the rest dropped. ipykernel buffers what it
# has not sent yet, so under the memory limit the kernel may die instead (then: restart).
import sys

chunk = "x" * 2**20
for _ in range(1024):
    sys.stdout.write(chunk)
