# expect: ok
# restarted: no
# timeout: 10
# Leaves a daemon in a new session (outside the kernel's process group): the sandbox still
# finds it (its uid / cgroup) when the kernel stops.
import subprocess

subprocess.Popen(["sleep", "600"], start_new_session=True)
print("daemon started")
