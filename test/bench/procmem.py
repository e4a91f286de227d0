"""Peak memory of one server backend and its parallel workers while a
statement runs (index.py's build memory).

Sampled every 0.1 s from /proc/PID/smaps (the server must run on this
machine, readable by this user): the private memory of the backend and of
every "parallel worker for PID" process (private anonymous pages and heap),
plus the dynamic shared memory segments they map (/dev/shm/PostgreSQL.*,
where pgvector's parallel build keeps its graph), each segment counted once.
The main shared memory segment (shared_buffers) is left out: its size is a
setting, and a scan makes a process map the buffers it reads, which is not
memory the build needs.  Independent of maintenance_work_mem: it measures
what the build touched, not what it was allowed.
"""
import os
import threading


def _workers(leader):
    """Pids of the parallel workers of backend leader."""
    tag = ("parallel worker for PID %d" % leader).encode()
    out = []
    for p in os.listdir("/proc"):
        if p.isdigit():
            try:
                with open("/proc/%s/cmdline" % p, "rb") as f:
                    if tag in f.read():
                        out.append(int(p))
            except OSError:
                pass
    return out


def _smaps(pid):
    """(private bytes, {dsm segment name: rss bytes}) of one process."""
    private, dsm, kind, name = 0, {}, None, None
    try:
        with open("/proc/%d/smaps" % pid) as f:
            for line in f:
                parts = line.split()
                if not parts[0].endswith(":"):      # a mapping's header line
                    name = parts[5] if len(parts) > 5 else ""
                    if name.startswith("/dev/shm/PostgreSQL."):
                        kind = "dsm"
                    elif parts[1][3] == "p" and (name in ("", "[heap]", "[stack]") or name.startswith("[anon")):
                        kind = "private"
                    else:                           # files, shared_buffers
                        kind = None
                elif kind == "dsm" and parts[0] == "Rss:":
                    dsm[name] = max(dsm.get(name, 0), int(parts[1]) * 1024)
                elif kind == "private" and parts[0] in ("Private_Clean:", "Private_Dirty:"):
                    private += int(parts[1]) * 1024
    except OSError:
        pass
    return private, dsm


def sample(pid):
    """(bytes in use now by backend pid and its parallel workers, workers,
    bytes of dynamic shared memory among them)."""
    total, dsm = 0, {}
    workers = _workers(pid)
    for p in [pid] + workers:
        priv, d = _smaps(p)
        total += priv
        for k, v in d.items():
            dsm[k] = max(dsm.get(k, 0), v)
    return total + sum(dsm.values()), len(workers), sum(dsm.values())


class PeakMemory:
    """with PeakMemory(pid) as m: ...; then m.peak is the highest sample,
    m.start the first, m.workers the most parallel workers seen, m.dsm the
    most dynamic shared memory."""

    def __init__(self, pid, interval=0.1):
        self.pid, self.interval = pid, interval
        self.start = self.peak = self.workers = self.dsm = 0
        self._stop = threading.Event()

    def _take(self):
        total, workers, dsm = sample(self.pid)
        self.peak = max(self.peak, total)
        self.workers = max(self.workers, workers)
        self.dsm = max(self.dsm, dsm)
        return total

    def _run(self):
        while not self._stop.wait(self.interval):
            self._take()

    def __enter__(self):
        self.start = self._take()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self._take()
        return False
