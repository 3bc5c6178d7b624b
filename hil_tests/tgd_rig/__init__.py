"""TGD hardware-in-the-loop rig (docs/hil.md).

    from tgd_rig.emulated import EmulatedRig        # firmware on MicroPython + SIM7600 emulator
    from tgd_rig.serial_backend import SerialRig    # a real board (hil_tests/rig.toml)
    from tgd_rig.runner import run_scenario         # a scenario file -> a report
    from tgd_rig.scenario import load_scenario

Modules are imported where they are used: importing the package starts nothing.
"""
