# TEST DOUBLE of firmware/ed25519.py -- NOT Ed25519, NOT secure, tests only.
#
# The real pure-Python Ed25519 verify comes from branch i17-server (OTA-CONTRACT.md).
# Until it is merged, the OTA rig tests (test_rig_ota_*.py) put this folder on the
# firmware's MICROPYPATH so that `from ed25519 import verify` finds something with the
# same signature: a "signature" here is sha256(TAG + public key + message), twice.
# It tells keys and messages apart (a wrong key or a changed manifest fails), which is
# what the handset's checks need; anyone can forge it, so it never leaves the tests.
# ota_testkit.py uses the real Ed25519 instead as soon as firmware/ed25519.py exists.
import hashlib

TAG = b"TGD-ED25519-TEST-DOUBLE"


def sign_double(pub, msg):
    d = hashlib.sha256(TAG + bytes(pub) + bytes(msg)).digest()
    return d + d


def verify(pub, msg, sig):
    return len(pub) == 32 and len(sig) == 64 and sign_double(pub, msg) == bytes(sig)
