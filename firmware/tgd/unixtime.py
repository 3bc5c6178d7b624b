# Calendar arithmetic on Unix seconds, independent of the port's time epoch
# (time.gmtime on some MicroPython ports counts from 2000).


def civil(unix):
    """Unix seconds UTC -> (year, month, day, hour, minute, second)."""
    days, rem = divmod(int(unix), 86400)
    hour, rem = divmod(rem, 3600)
    minute, second = divmod(rem, 60)
    # Howard Hinnant's days_from_civil inverse.
    z = days + 719468
    era = z // 146097
    doe = z - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    y = yoe + era * 400
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    d = doy - (153 * mp + 2) // 5 + 1
    m = mp + 3 if mp < 10 else mp - 9
    if m <= 2:
        y += 1
    return y, m, d, hour, minute, second


def stamp(unix):
    """Unix seconds -> 'yyyyMMddHHmmss' (UTC), the AML `top` format."""
    return "%04d%02d%02d%02d%02d%02d" % civil(unix)
