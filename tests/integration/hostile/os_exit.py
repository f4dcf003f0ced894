# expect: crashed
# restarted: yes
# timeout: 10
# Exits the kernel process outright.
import os

os._exit(3)
