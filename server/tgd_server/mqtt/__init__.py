"""The MQTT transport: a bridge between the broker's device topics and the ingest core.

Topic layout (docs/protocol.md, "MQTT"):

    tgd/<device id>/up      handset -> server, QoS 1, payload = signature hex, "\\n", body
    tgd/<device id>/down    server -> handset, QoS 1, payload = signature hex, "\\n", answer
    tgd/<device id>/status  retained "online" (the handset, on connect) / "offline" (its last will)
"""
