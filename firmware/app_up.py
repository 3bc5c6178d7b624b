# The app's modem start-up task (App.run starts it through app_boot.modem_up): power
# the modem on, then identity, network clock and registration. A module of its own
# so that app_boot's code leaves the heap as soon as the boot's setup is done: this
# task runs for seconds, while sim7600_boot (the driver's start-up code) is loaded.
import asyncio
import sys


async def modem_up(app):
    dev, log = app.dev, app.log
    driver = sys.modules.get("sim7600")  # absent with a scripted modem (tests)
    if driver is not None:
        driver.keep_boot(True)
    try:
        await _up(app, dev, log)
    finally:
        if driver is not None:
            driver.keep_boot(False)
    # Heartbeats wait for the network anyway: their code loads after the start-up's
    app._start_heartbeat()


async def _up(app, dev, log):
    while True:
        try:
            await dev.modem.start()
            break
        except Exception as e:  # noqa: BLE001 - a modem or board fault: retry, never stop
            log.error("modem_start", e)
        await asyncio.sleep_ms(app.timing.modem_retry_ms)
    dev.ready.set()  # the alarm may dial now; the rest is nice to have
    try:
        dev.imei, dev.iccid = await dev.modem.identity()
        log.event("MODEM_READY", imei=dev.imei, iccid=dev.iccid)
    except Exception as e:  # noqa: BLE001 - even a MemoryError: READY must still come
        log.error("identity", e)
    try:
        dev.clock.set(await dev.modem.network_time())
    except Exception as e:  # noqa: BLE001
        log.error("network_time", e)
    try:
        if not await dev.modem.wait_registered(60000):
            log.event("ERROR", where="modem", what="not_registered")
    except Exception as e:  # noqa: BLE001
        log.error("registration", e)
    log.event("READY")
    dev.online.set()
