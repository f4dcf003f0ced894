# expect: ok
# restarted: no
# timeout: 10
# Writes outside its working directory: /tmp, $HOME, /, the caller's directory, /dev/shm.
# Whatever it manages to write lands in private tmpfs mounts, never on the host.
import os

name = os.environ.get("JUPYTER_QWQ_TEST_NAME", "qwq-escape")
targets = [f"/tmp/{name}", f"/root/{name}", os.path.expanduser(f"~/{name}"), f"/{name}",
           f"/dev/shm/{name}", f"/var/tmp/{name}", f"/usr/{name}", f"/etc/{name}"]
targets += [os.path.join(p, name) for p in os.environ.get("JUPYTER_QWQ_TEST_DIRS", "").split(":") if p]
for target in targets:
    try:
        with open(target, "w") as f:
            f.write("escaped")
        print("wrote", target)
    except OSError as error:
        print("refused", target, error.__class__.__name__)
