# Signature checks for the handset: SHA-512 and Ed25519 verify (releases, issue 17).
