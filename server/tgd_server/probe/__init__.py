"""`tgd-server probe`: the security probe an operator runs against any deployment
(docs/server.md "Security probe"), and CI against the test server.

Parts (each can be skipped with --skip):
- `hostile`: device messages a stranger or a broken handset sends (hostile.py);
- `flood`:   valid-message throughput during a hostile flood, as a ratio to the quiet
             rate measured in the same run (flood.py);
- `roles`:   the role matrix of the REST API (roles.py);
- `lockout`: the operator-lockout attack on the console login (lockout.py);
- `schema`:  schemathesis on docs/openapi.yaml with each role's token (schema.py).

It prints counts and exits non-zero on any violation: a 5xx, a hostile message
accepted, a row written by a rejected request (with --database-url), a role allowed
what it must not do, an operator locked out, an answer the spec does not allow, a
flood ratio under --min-ratio.
"""
