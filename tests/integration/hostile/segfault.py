# expect: crashed
# restarted: yes
# timeout: 10
# Dereferences a null pointer: SIGSEGV.
import ctypes

ctypes.string_at(0)
