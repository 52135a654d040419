"""The whole machine's CPU time so far, as bench/peers.ts reads it for ours."""


def machine_ticks():
    """(busy, all) USER_HZ ticks over every core: user nice system idle iowait irq softirq steal."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:9]]
    idle = fields[3] + fields[4]
    return sum(fields) - idle, sum(fields)
