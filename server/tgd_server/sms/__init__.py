"""The SMS channel: AML v1 messages from handsets, received by a gateway modem.

- `aml`: strict AML v1 parser (pure);
- `modem`: a small pyserial AT client for the gateway modem;
- `gateway`: the loop that reads, stores and deletes SMS (`tgd-server sms-gateway`);
- `ingest_sms`: `ingest_aml_sms(sender, text, received_at)` into the ingest core.
"""
