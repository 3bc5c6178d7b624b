# Runs INSIDE the ESP32-faithful VM (bench/ota_verify_bench.py starts it): verifies a
# release manifest's Ed25519 signature as a handset does, and prints the figures.
#   micropython -X heapsize=48k ota_verify_vm.py <pub hex> <manifest file> <sig hex> <runs>
import gc
import sys
import time
from binascii import unhexlify

import ed25519

pub = unhexlify(sys.argv[1])
with open(sys.argv[2], "rb") as f:
    manifest = f.read()
sig = unhexlify(sys.argv[3])
runs = int(sys.argv[4])

ok = True
times = []
for _ in range(runs):
    gc.collect()
    t0 = time.ticks_us()
    ok = ed25519.verify(pub, manifest, sig) and ok
    times.append(time.ticks_diff(time.ticks_us(), t0) / 1000)
times.sort()
print(f"RESULT ok={ok} bytes={len(manifest)} runs={runs} median_ms={times[len(times) // 2]:.1f} min_ms={times[0]:.1f} max_ms={times[-1]:.1f}")
