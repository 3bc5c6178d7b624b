# The commands a server answer carries (docs/protocol.md "The answer"), whatever
# the transport brought it: `locate` and `config`.
from tgd import limits


def take_commands(dev, answer):
    """Carry out the commands in a server answer (docs/protocol.md "The answer").

    `locate`: the caller sends a position now (returns True). `config`: the settable
    keys are validated like config.json and applied in memory (a reboot returns to
    the provisioned file). The last id carried out goes back in `cmd`.
    """
    cmds = answer.get("cmds") if answer else None
    if not isinstance(cmds, list):
        return False
    locate = False
    for c in cmds:
        if not isinstance(c, dict) or not isinstance(c.get("id"), int):
            continue
        kind = c.get("type")
        if kind == "locate":
            locate = True
        elif kind == "config":
            limits.apply_config(dev, c.get("set"))
        else:
            dev.log.event("ERROR", where="command", what="unknown_type")
        dev.last_cmd = c["id"]
    return locate
