# expect: timeout
# restarted: no
# timeout: 2
# A block that never ends: interrupted at the deadline, the kernel keeps its state.
while True:
    pass
