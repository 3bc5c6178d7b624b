# A scratch folder per test run for the VM tests (the handset's flash): named with
# random bytes so that parallel runs never share one.
import os


def unique_dir(name):
    return "/tmp/tgd-mpt-%s-%s" % (name, "".join("%02x" % b for b in os.urandom(4)))


def empty_dir(path):
    """Create `path` if it is missing and remove the files in it."""
    try:
        os.mkdir(path)
    except OSError:
        pass
    for name in os.listdir(path):
        os.remove(path + "/" + name)
