# expect: error
# restarted: no
# timeout: 20
# Allocates (and touches) memory until the address-space limit says no: MemoryError.
hog = []
while True:
    hog.append(bytearray(64 * 2**20))
