# expect: ok
# restarted: no
# timeout: 10
# Reads the user's SSH key, the notebook's directory and the environment's secrets.
import glob
import os

paths = [os.environ.get("JUPYTER_QWQ_TEST_SECRET", "/root/.ssh/id_rsa"),
         os.path.expanduser("~/.ssh/id_rsa"), "/root/.ssh/id_ed25519"]
for path in paths:
    try:
        print("READ", path, open(path).read())
    except OSError as error:
        print("refused", path, error.__class__.__name__)
for pattern in ["/root/.ssh/*", "/home/*/.ssh/*", os.environ.get("JUPYTER_QWQ_TEST_GLOB", "/x")]:
    print(pattern, "->", glob.glob(pattern))
print("env:", sorted(os.environ))
