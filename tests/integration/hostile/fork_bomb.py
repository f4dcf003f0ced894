# expect: error|timeout
# restarted: any
# timeout: 5
# Every process forks forever: RLIMIT_NPROC on the kernel's own uid (and pids.max) stop it;
# the copies it made are killed with the block.
import os

while True:
    os.fork()
