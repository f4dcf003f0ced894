# expect: error
# restarted: no
# timeout: 20
# Writes a file larger than RLIMIT_FSIZE in its own directory: EFBIG.
with open("big.bin", "wb") as f:
    for _ in range(1024):
        f.write(b"\0" * 2**20)
