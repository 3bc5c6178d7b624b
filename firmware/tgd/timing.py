# Every delay of the alarm and heartbeat policies, in one place. `scale` shrinks them
# all for tests (the scripted modem and the emulator's fast timing).


class Timing:
    def __init__(self, scale=1.0):
        self.scale = scale
        self.call_backoff_ms = (self.ms(2000), self.ms(30000))
        self.call_guard_ms = self.ms(120000)     # a dial with no outcome at all
        self.data_backoff_ms = (self.ms(1000), self.ms(60000))
        self.data_timeout_ms = 30000             # one HTTP POST, modem side (not scaled)
        self.sms_backoff_ms = (self.ms(5000), self.ms(120000))
        self.sms_report_ms = self.ms(180000)     # wait for +CDS before sending again
        self.aml_deadline_ms = self.ms(18000)    # AML SMS submitted by then: delivered within ~20 s
        self.sms_yield_ms = self.ms(4000)        # an SMS waits this long for the GNSS position message
        self.cell_wait_ms = 1500  # the first data message waits this long for the cell (not scaled)
        self.gnss_poll_ms = self.ms(500)         # until the first fix (a fix is seen <= 0.5 s late)
        self.gnss_track_poll_ms = self.ms(5000)  # afterwards
        self.modem_retry_ms = self.ms(5000)
        self.battery_check_ms = self.ms(60000)
        self.heartbeat_backoff_ms = (self.ms(10000), self.ms(120000))
        self.dtr_idle_ms = self.ms(1000)         # no AT exchange this long: DTR high (modem may sleep)
        self.sleep_min_ms = self.ms(50)          # light sleep only when nothing is due for this long

    def ms(self, value):
        return max(1, int(value * self.scale))

    def s(self, seconds):
        return self.ms(seconds * 1000)


GOOD_FIX_M = 50  # a GNSS fix this accurate sends the AML SMS before the deadline
